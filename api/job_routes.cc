// The jobs' routes: submit, list, view, events, cancel.
#include "api/http_api_impl.h"

namespace joule::api {

void HttpApi::Impl::SubmitJob(const Principal& who, const HttpRequest& req, HttpResponse& res) {
  const std::string key = req.get_header_value("Idempotency-Key");
  if (key.size() > kMaxIdempotencyKey) {
    return Fail(res, {400, "Idempotency-Key", fmt::format("at most {} characters", kMaxIdempotencyKey)});
  }
  if (std::any_of(key.begin(), key.end(), [](char c) { return c < 0x21 || c > 0x7e; })) {
    return Fail(res, {400, "Idempotency-Key", "must be printable ASCII without spaces (a UUID, say)"});
  }
  const std::string type = req.get_header_value("Content-Type");
  io::SubmitSpec spec;
  if (type.starts_with("text/x-shellscript") || req.body.starts_with("#!")) {
    Result<io::BatchJob> batch = io::ParseBatchScript(req.body, "script");
    if (!batch.ok()) return Fail(res, ParseError(batch.status().message(), "script"));
    spec = io::FromBatchJob(*batch);
  } else if (type.empty() || type.starts_with("application/json") || type.starts_with("application/yaml") ||
             type.starts_with("application/x-yaml") || type.starts_with("text/yaml")) {
    Result<io::SubmitSpec> parsed = io::ParseJobSpec(req.body, "body");
    if (!parsed.ok()) return Fail(res, ParseError(parsed.status().message(), "body"));
    spec = std::move(*parsed);
  } else {
    return Fail(res, {415, "Content-Type",
                      "must be application/json, application/yaml or text/x-shellscript (a batch script)"});
  }
  control::Outcome<control::SubmitResult> r = plane.Submit(who, std::move(spec), key);
  if (!r.ok()) return Fail(res, r.error);
  json view;
  // The job as listed; GET /api/v1/jobs/{id} adds the spec as accepted.
  (void)plane.VisitJob(who, r.value->id, [&](const control::JobInfo& j) { view = JobView(j, false); });
  res.set_header("Location", fmt::format("/api/v1/jobs/{}", r.value->id));
  Reply(res, r.value->created ? 201 : 200, view);
}

void HttpApi::Impl::ListJobs(const Principal& who, const HttpRequest& req, HttpResponse& res) {
  control::JobFilter filter;
  FieldSet fields;
  fields.set();
  for (const auto& [name, value] : req.params) {
    if (name == "state") {
      filter.state = StateNamed(value);
      if (!filter.state) {
        return Fail(res, {400, "state", "must be pending, running, completed, failed, cancelled or rejected"});
      }
    } else if (name == "tenant") {
      filter.tenant = plane.FindTenant(value);
      if (!filter.tenant) return Fail(res, {400, "tenant", fmt::format("'{}' is not a tenant", value)});
    } else if (name == "queue") {
      filter.queue = value;
    } else if (name == "after") {
      std::optional<uint64_t> n = Number(value);
      if (!n) return Fail(res, {400, "after", "must be a job id"});
      filter.after = *n;
    } else if (name == "limit") {
      std::optional<uint64_t> n = Number(value);
      const uint32_t max = plane.config().limits.max_page;
      if (!n || *n == 0 || *n > max) return Fail(res, {400, "limit", fmt::format("must be 1 to {}", max)});
      filter.limit = static_cast<uint32_t>(*n);
    } else if (name == "history") {
      if (value != "true" && value != "false") return Fail(res, {400, "history", "must be true or false"});
      filter.history = value == "true";
    } else if (name == "fields") {
      fields.reset();
      std::stringstream in(value);
      for (std::string f; std::getline(in, f, ',');) {
        auto it = std::find(kJobFields.begin(), kJobFields.end(), f);
        if (it == kJobFields.end()) return Fail(res, {400, "fields", fmt::format("'{}' is not a field of a job", f)});
        fields.set(static_cast<size_t>(it - kJobFields.begin()));
      }
    } else {
      return Fail(res, {400, name, "is not a known parameter (state, tenant, queue, after, limit, history, fields)"});
    }
  }
  std::string body = R"({"jobs":[)";
  JobId last = 0;
  const bool more = plane.VisitJobs(who, filter, [&](const control::JobInfo& j) {
    if (last != 0) body.push_back(',');
    AppendJob(body, j, fields);
    last = j.id;
  });
  body += more ? fmt::format(R"(],"next":{}}})", last) : R"(],"next":null})";
  res.status = 200;
  res.set_content(body, "application/json");
}

std::optional<JobId> HttpApi::Impl::JobIdOf(const HttpRequest& req, HttpResponse& res) {
  std::optional<uint64_t> id = Number(req.matches[1]);
  if (!id) Fail(res, {400, "id", "must be a job id"});
  return id;
}

void HttpApi::Impl::GetJob(const Principal& who, const HttpRequest& req, HttpResponse& res) {
  std::optional<JobId> id = JobIdOf(req, res);
  if (!id) return;
  json view;
  control::Outcome<bool> r = plane.VisitJob(who, *id, [&](const control::JobInfo& j) { view = JobView(j, true); });
  if (!r.ok()) return Fail(res, r.error);
  Reply(res, 200, view);
}

void HttpApi::Impl::JobEvents(const Principal& who, const HttpRequest& req, HttpResponse& res) {
  std::optional<JobId> id = JobIdOf(req, res);
  if (!id) return;
  json events = json::array();
  control::Outcome<bool> r = plane.VisitJob(who, *id, [&](const control::JobInfo& j) {
    for (const control::JobEvent& e : j.events) events.push_back({{"at", Time(e.at)}, {"what", e.what}});
  });
  if (!r.ok()) return Fail(res, r.error);
  Reply(res, 200, {{"events", events}});
}

void HttpApi::Impl::CancelJob(const Principal& who, const HttpRequest& req, HttpResponse& res) {
  std::optional<JobId> id = JobIdOf(req, res);
  if (!id) return;
  control::Outcome<JobId> r = plane.Cancel(who, *id);
  if (!r.ok()) return Fail(res, r.error);
  json view;
  (void)plane.VisitJob(who, *id, [&](const control::JobInfo& j) { view = JobView(j, false); });
  Reply(res, 202, view);
}

}  // namespace joule::api
