// Checks the server's OpenAPI document against the implementation: the document must be valid
// OpenAPI 3 (swagger-parser), and every documented operation is called on a live server, its
// status must be one the document lists for it, and its JSON body must match the documented schema
// (Ajv). Usage: node check.js BASE_URL OPERATOR_TOKEN TENANT_TOKEN TENANT_NAME NODE_NAME AGENT_TOKEN
'use strict';
const SwaggerParser = require('@apidevtools/swagger-parser');
const Ajv = require('ajv');
const addFormats = require('ajv-formats');

const [base, operator, tenant, tenantName, nodeName, agent] = process.argv.slice(2);

async function main() {
  const raw = await (await fetch(`${base}/api/v1/openapi.json`)).json();
  await SwaggerParser.validate(structuredClone(raw));
  const doc = await SwaggerParser.dereference(structuredClone(raw));
  const ajv = new Ajv({ strict: false, allErrors: true });
  addFormats(ajv);

  const spec = { name: 'openapi-check', workers: 1, resources: { gpus: 1 }, time_limit: 600 };
  const calls = [
    ['get', '/healthz', '/healthz', null, null],
    ['get', '/readyz', '/readyz', null, null],
    ['get', '/metrics', '/metrics', null, null],
    ['get', '/api/v1/openapi.json', '/api/v1/openapi.json', null, null],
    ['post', '/api/v1/jobs', '/api/v1/jobs', tenant, spec],
    ['post', '/api/v1/jobs', '/api/v1/jobs', tenant, { name: 'x', bogus: 1 }],
    ['post', '/api/v1/jobs', '/api/v1/jobs', null, spec],
    ['get', '/api/v1/jobs', '/api/v1/jobs?limit=5', tenant, null],
    ['get', '/api/v1/jobs', '/api/v1/jobs?state=sleeping', tenant, null],
    ['get', '/api/v1/jobs/{id}', '/api/v1/jobs/{job}', tenant, null],
    ['get', '/api/v1/jobs/{id}', '/api/v1/jobs/999999', tenant, null],
    ['get', '/api/v1/jobs/{id}/events', '/api/v1/jobs/{job}/events', tenant, null],
    ['post', '/api/v1/jobs/{id}/cancel', '/api/v1/jobs/{job}/cancel', tenant, null],
    ['get', '/api/v1/nodes', '/api/v1/nodes', tenant, null],
    ['get', '/api/v1/nodes/{name}', `/api/v1/nodes/${nodeName}`, tenant, null],
    ['post', '/api/v1/nodes/{name}/drain', `/api/v1/nodes/${nodeName}/drain`, operator, { reason: 'openapi check' }],
    ['post', '/api/v1/nodes/{name}/drain', `/api/v1/nodes/${nodeName}/drain`, tenant, { reason: 'x' }],
    ['post', '/api/v1/nodes/{name}/resume', `/api/v1/nodes/${nodeName}/resume`, operator, {}],
    ['get', '/api/v1/tenants', '/api/v1/tenants', operator, null],
    ['get', '/api/v1/tenants', '/api/v1/tenants', tenant, null],
    ['get', '/api/v1/tenants/{name}', `/api/v1/tenants/${tenantName}`, tenant, null],
    ['patch', '/api/v1/tenants/{name}', `/api/v1/tenants/${tenantName}`, operator, { weight: 2 }],
    ['get', '/api/v1/queues', '/api/v1/queues', operator, null],
    ['get', '/api/v1/fleet', '/api/v1/fleet', tenant, null],
    ['get', '/api/v1/audit', '/api/v1/audit?limit=10', operator, null],
    ['post', '/api/v1/agents/{node}/heartbeat', `/api/v1/agents/${nodeName}/heartbeat`, agent, { address: '127.0.0.1', ended: [] }],
    ['post', '/api/v1/agents/{node}/heartbeat', `/api/v1/agents/${nodeName}/heartbeat`, tenant, {}],
  ];
  let job = null;
  const covered = new Set();
  const failures = [];
  for (const [method, template, pathIn, token, body] of calls) {
    const path = pathIn.replace('{job}', String(job));
    const headers = {};
    if (token) headers.Authorization = `Bearer ${token}`;
    if (body) headers['Content-Type'] = 'application/json';
    const res = await fetch(base + path, { method: method.toUpperCase(), headers, body: body ? JSON.stringify(body) : undefined });
    const text = await res.text();
    const op = doc.paths[template] && doc.paths[template][method];
    const where = `${method.toUpperCase()} ${path} -> ${res.status}`;
    if (!op) { failures.push(`${where}: not in the document`); continue; }
    covered.add(`${method} ${template}`);
    const documented = op.responses[String(res.status)];
    if (!documented) { failures.push(`${where}: status not documented`); continue; }
    const json = documented.content && documented.content['application/json'];
    if (json && json.schema) {
      let value;
      try { value = JSON.parse(text); } catch (e) { failures.push(`${where}: body is not JSON`); continue; }
      if (!ajv.validate(json.schema, value)) failures.push(`${where}: ${ajv.errorsText(ajv.errors)}`);
      if (template === '/api/v1/jobs' && method === 'post' && res.status === 201) job = value.id;
    }
  }
  for (const [template, ops] of Object.entries(doc.paths)) {
    for (const method of Object.keys(ops)) {
      if (!covered.has(`${method} ${template}`)) failures.push(`${method.toUpperCase()} ${template}: documented, never called`);
    }
  }
  if (failures.length) {
    console.error(failures.join('\n'));
    process.exit(1);
  }
  console.log(`openapi: document valid; ${calls.length} calls over ${covered.size} operations match it`);
}

main().catch((e) => { console.error(e.message || e); process.exit(1); });
