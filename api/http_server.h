// An event-driven HTTP/1.1 server (Boost.Beast over Boost.Asio, Debian's libboost-dev) for the
// control plane's API: a connection costs memory, not a thread. A few I/O threads read and write
// every connection; handlers, which may wait for the journal, run on a pool of `handler_threads`
// (a route that never waits may run on the I/O thread instead: RouteOnIo).
// What a busy campus and an attacker do to it is bounded while reading, before any buffering:
//   - the request head has `head_timeout` from its first byte, its body `body_timeout`, and an
//     idle keep-alive connection `idle_timeout` before a request: a trickle of bytes extends none
//     of them, and a connection past one is closed (without an answer, as nginx does);
//   - the head is at most `max_head_bytes` (431), the body `max_body_bytes` as sent (413 from its
//     Content-Length, or as soon as a chunked body passes it) and again once decompressed (gzip
//     and deflate are inflated with the same cap; other encodings get 415), within `body_timeout`;
//   - a route's `admit` runs on the head alone (authentication): a refused request is answered
//     without its body being read, and the connection closed;
//   - beyond `max_connections` open at once, new connections are closed at once;
//   - a head the parser refuses (NUL in a field, conflicting Content-Lengths) is a 400, so is a
//     header the API reads given twice (Authorization, Content-Type, Content-Encoding,
//     Idempotency-Key); a path, query or body that is not UTF-8 is a 400 naming it; a known path
//     with another method, a 405 with Allow.
// Every refusal the server makes itself goes through `refuse` (the API's JSON error body).
// Thread-safety: Bind, then Serve on one thread; Stop from any thread.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <regex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/status.h"

namespace joule::api {

// Header names compare without case (RFC 9110).
struct Caseless {
  bool operator()(const std::string& a, const std::string& b) const;
};

struct HttpRequest {
  std::string method, target, path;                // target: path and query as sent; path: decoded, no query
  std::multimap<std::string, std::string> params;  // the query, decoded
  std::multimap<std::string, std::string, Caseless> headers;
  std::string body;                  // decompressed
  std::vector<std::string> matches;  // the route's pattern: [0] the path, then its groups
  std::string remote_addr;
  std::string get_header_value(const std::string& name) const;
  bool has_header(const std::string& name) const { return headers.contains(name); }
};

struct HttpResponse {
  int status = 200;
  std::string body, content_type;
  std::vector<std::pair<std::string, std::string>> headers;
  void set_content(std::string content, std::string type) {
    body = std::move(content);
    content_type = std::move(type);
  }
  void set_header(std::string name, std::string value) { headers.emplace_back(std::move(name), std::move(value)); }
};

struct HttpLimits {
  size_t max_head_bytes = 16 * 1024;
  size_t max_body_bytes = 1 << 20;
  std::chrono::milliseconds head_timeout{10'000}, body_timeout{30'000}, idle_timeout{120'000}, write_timeout{30'000};
  size_t max_connections = 50'000;
  size_t handler_threads = 64;
  size_t io_threads = 2;
};

// What the server counts of its own (for the API's metrics).
struct HttpCounters {
  std::atomic<uint64_t> accepted{0}, open{0}, refused_connections{0}, timed_out{0}, refused_requests{0};
};

class HttpServer {
 public:
  using Handler = std::function<void(const HttpRequest&, HttpResponse&)>;
  // A handler that may answer later (a long poll): `respond` is called once, from any thread; the
  // connection waits for it without holding a thread.
  using Respond = std::function<void(HttpResponse)>;
  using AsyncHandler = std::function<void(const HttpRequest&, Respond)>;
  // Runs on the head (body empty): a response returned is sent instead, the body left unread.
  using Admit = std::function<std::optional<HttpResponse>(const HttpRequest&)>;
  // The body of a refusal the server makes itself: status, the field at fault, the rule.
  using Refuse = std::function<void(HttpResponse&, int status, std::string_view field, std::string_view rule)>;

  HttpServer(HttpLimits limits, Refuse refuse);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // `pattern` matches the whole path; its groups become HttpRequest::matches. First match wins.
  void Route(std::string method, const std::string& pattern, Handler handler, Admit admit = {});
  void RouteAsync(std::string method, const std::string& pattern, AsyncHandler handler, Admit admit = {});
  // As RouteAsync, but the handler runs on the I/O thread that read the request, sparing the two
  // hand-offs between threads (a third of a heartbeat's cost): it must not wait for the journal,
  // and passes what may wait to Offload.
  void RouteOnIo(std::string method, const std::string& pattern, AsyncHandler handler, Admit admit = {});
  // Runs `work` on the handlers' pool.
  void Offload(std::function<void()> work);
  // Answers a request in process, as a connection would once its head and body are read: the
  // target decoded, the same refusals (UTF-8, 404, 405, 415, admit, body), then the handler.
  // nullopt when the handler has not answered within `wait` (a long poll). For fuzzing and tests:
  // a request is method, target, headers and body; works without Bind or Serve.
  std::optional<HttpResponse> Dispatch(HttpRequest request, std::chrono::milliseconds wait);
  // Connections speak TLS 1.2 or 1.3 with this certificate (PEM, its chain after it) and key,
  // from the next Bind on; the handshake counts in the head's time. Errors name the file.
  Status UseTls(const std::string& certificate, const std::string& key);
  // Binds the listening socket (SO_REUSEADDR only, backlog SOMAXCONN); port 0 takes any free
  // port. Returns the port bound.
  Result<int> Bind(const std::string& host, int port);
  void Serve();  // until Stop
  void Stop();
  const HttpCounters& counters() const;

  struct Impl;  // the connections' too (http_server.cc)

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace joule::api
