// The HTTP/JSON API over a control plane (docs/api.md; the OpenAPI document at
// /api/v1/openapi.json describes every route): jobs, nodes, tenants, queues, fleet and power
// status, the audit log under /api/v1; Prometheus metrics at /metrics; /healthz and /readyz.
// Every /api/v1 route but the OpenAPI document takes a bearer token; every 4xx or 5xx body is
// `{"error": {"status", "field", "message"}}`, naming the field at fault and the rule it broke.
// Thread-safety: Serve blocks its caller; Stop may be called from any thread.
#pragma once

#include <memory>
#include <string>

#include "api/http_server.h"
#include "base/status.h"
#include "control/control_plane.h"

namespace joule::api {

class HttpApi {
 public:
  explicit HttpApi(control::ControlPlane& plane);
  ~HttpApi();
  HttpApi(const HttpApi&) = delete;
  HttpApi& operator=(const HttpApi&) = delete;

  // TLS on the listener (HttpServer::UseTls), before Bind.
  Status UseTls(const std::string& certificate, const std::string& key);
  // Binds the listening socket; port 0 takes any free port. Returns the port bound.
  Result<int> Bind(const std::string& host, int port);
  void Serve();  // until Stop
  void Stop();
  // One request answered in process, through every check a connection's request goes through
  // (HttpServer::Dispatch): for the fuzzer of the request path and for tests.
  std::optional<HttpResponse> Dispatch(HttpRequest request, std::chrono::milliseconds wait);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// The OpenAPI 3 document, as served.
const std::string& OpenApiDocument();

}  // namespace joule::api
