#include "api/http_server.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <strings.h>
#include <sys/socket.h>
#include <zlib.h>

#include <fmt/format.h>
#include <array>
#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <future>
#include <memory>
#include <thread>
#include <type_traits>

#include "base/text.h"

namespace joule::api {
namespace {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = net::ip::tcp;

int FromHex(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// %XX decoded (and '+' as a space in a query); a malformed escape is kept as it is.
std::string Decode(std::string_view text, bool query) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '%' && i + 2 < text.size() && FromHex(text[i + 1]) >= 0 && FromHex(text[i + 2]) >= 0) {
      out.push_back(static_cast<char>(FromHex(text[i + 1]) * 16 + FromHex(text[i + 2])));
      i += 2;
    } else if (query && text[i] == '+') {
      out.push_back(' ');
    } else {
      out.push_back(text[i]);
    }
  }
  return out;
}

// The target's path and query, %-decoded, into `req`.
void ParseTarget(std::string_view target, HttpRequest& req) {
  const size_t question = target.find('?');
  req.path = Decode(target.substr(0, question), false);
  if (question == std::string_view::npos) return;
  std::string_view query = target.substr(question + 1);
  while (!query.empty()) {
    const size_t amp = query.find('&');
    const std::string_view pair = query.substr(0, amp);
    const size_t eq = pair.find('=');
    if (!pair.empty()) {
      req.params.emplace(Decode(pair.substr(0, eq), true),
                         eq == std::string_view::npos ? "" : Decode(pair.substr(eq + 1), true));
    }
    query = amp == std::string_view::npos ? "" : query.substr(amp + 1);
  }
}

// Inflates a gzip or zlib body into `out`, at most `limit` bytes: 413 past it, 400 when malformed.
int Inflate(std::string_view in, size_t limit, std::string& out) {
  z_stream z{};
  if (inflateInit2(&z, 15 + 32) != Z_OK) return 500;  // 15 + 32: a zlib or a gzip header
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  z.avail_in = static_cast<uInt>(in.size());
  char chunk[64 * 1024];
  int rc = Z_OK;
  int status = 0;
  while (rc != Z_STREAM_END) {
    z.next_out = reinterpret_cast<Bytef*>(chunk);
    z.avail_out = sizeof(chunk);
    rc = inflate(&z, Z_NO_FLUSH);
    if (rc != Z_OK && rc != Z_STREAM_END) {
      status = 400;
      break;
    }
    const size_t produced = sizeof(chunk) - z.avail_out;
    if (out.size() + produced > limit) {
      status = 413;
      break;
    }
    out.append(chunk, produced);
    if (rc == Z_OK && produced == 0 && z.avail_in == 0) {  // the input ended before the stream
      status = 400;
      break;
    }
  }
  inflateEnd(&z);
  return status;
}

}  // namespace

bool Caseless::operator()(const std::string& a, const std::string& b) const {
  return ::strcasecmp(a.c_str(), b.c_str()) < 0;
}

std::string HttpRequest::get_header_value(const std::string& name) const {
  auto it = headers.find(name);
  return it == headers.end() ? "" : it->second;
}

struct RouteEntry {
  std::string method;
  std::regex pattern;
  HttpServer::AsyncHandler handler;
  HttpServer::Admit admit;
  bool on_io = false;  // the handler runs on the I/O thread (RouteOnIo)
};

// Why a request is refused before its handler runs.
struct Refusal {
  int status = 400;
  std::string field, rule;
  std::vector<std::pair<std::string, std::string>> headers;
};

// Text the handlers read, and may echo in an error, is UTF-8: a body that is not is refused.
std::optional<Refusal> CheckBody(std::string_view body) {
  if (const std::optional<size_t> at = InvalidUtf8At(body)) {
    return Refusal{400, "body", fmt::format("is not valid UTF-8 (byte {})", *at)};
  }
  return std::nullopt;
}

struct HttpServer::Impl {
  HttpLimits limits;
  Refuse refuse;
  std::vector<RouteEntry> routes;
  HttpCounters counters;
  std::atomic<bool> stopped{false};
  net::thread_pool handlers;
  std::optional<net::ssl::context> tls;  // UseTls: connections speak TLS
  // Declared last, destroyed first: its pending operations own the connections, which use the
  // members above until they are gone.
  net::io_context io;
  tcp::acceptor acceptor{io};
  net::steady_timer accept_pause{io};

  Impl(HttpLimits l, Refuse r) : limits(l), refuse(std::move(r)), handlers(l.handler_threads) {}
  void Accept();

  // The route a parsed head goes to (its matches set in `req`), or why none: a path or query that
  // is not UTF-8 (400), no route (404), another method (405 with Allow), an unknown encoding (415).
  const RouteEntry* Select(HttpRequest& req, std::optional<Refusal>& refused) const {
    // A header the API reads, given twice, is ambiguous (which token? which key?): refused.
    for (const char* name : {"Authorization", "Content-Type", "Content-Encoding", "Idempotency-Key"}) {
      if (req.headers.count(name) > 1) {
        refused = Refusal{400, name, "is given more than once"};
        return nullptr;
      }
    }
    if (!IsUtf8(req.path)) {
      refused = Refusal{400, "path", "is not valid UTF-8 (after percent-decoding)"};
      return nullptr;
    }
    for (const auto& [name, value] : req.params) {
      if (!IsUtf8(name)) refused = Refusal{400, "query", "a parameter's name is not valid UTF-8"};
      if (!refused && !IsUtf8(value)) refused = Refusal{400, name, "is not valid UTF-8 (after percent-decoding)"};
      if (refused) return nullptr;
    }
    // The first route whose pattern matches the whole path with this method.
    bool path_known = false;
    std::smatch m;
    const RouteEntry* route = nullptr;
    for (const RouteEntry& r : routes) {
      if (!std::regex_match(req.path, m, r.pattern)) continue;
      path_known = true;
      if (r.method != req.method) continue;
      route = &r;
      req.matches.assign(m.begin(), m.end());
      break;
    }
    if (route == nullptr && path_known) {
      // RFC 9110: a 405 lists the methods the resource takes.
      std::string allow;
      for (const RouteEntry& r : routes) {
        if (std::regex_match(req.path, r.pattern) && allow.find(r.method) == std::string::npos) {
          allow += (allow.empty() ? "" : ", ") + r.method;
        }
      }
      refused = Refusal{
          405, "", fmt::format("no method {} for {}; it takes {}", req.method, req.path, allow), {{"Allow", allow}}};
      return nullptr;
    }
    if (route == nullptr) {
      refused = Refusal{404, "", fmt::format("no route for {} {}", req.method, req.path)};
      return nullptr;
    }
    const std::string encoding = req.get_header_value("Content-Encoding");
    if (!encoding.empty() && encoding != "identity" && encoding != "gzip" && encoding != "deflate") {
      refused = Refusal{415, "Content-Encoding", "must be gzip, deflate or identity"};
      return nullptr;
    }
    return route;
  }
};

namespace {

// A client's connection over `Stream`: beast::tcp_stream, or with TLS an ssl_stream over one.
template <class Stream>
class Connection : public std::enable_shared_from_this<Connection<Stream>> {
  static constexpr bool kTls = !std::is_same_v<Stream, beast::tcp_stream>;
  using std::enable_shared_from_this<Connection<Stream>>::shared_from_this;

 public:
  // `tls`: the server's context, for an ssl_stream (none for a plain one).
  template <class... Tls>
  Connection(HttpServer::Impl& server, tcp::socket socket, Tls&... tls)
      : server_(server), stream_(std::move(socket), tls...) {
    server_.counters.open++;
    beast::error_code ec;
    remote_ = Lowest().socket().remote_endpoint(ec).address().to_string(ec);
    Lowest().socket().set_option(tcp::no_delay(true), ec);
  }
  ~Connection() { server_.counters.open--; }

  // With TLS the handshake comes first, within the head's time.
  void Start() {
    if constexpr (kTls) {
      Lowest().expires_after(limits().head_timeout);
      stream_.async_handshake(net::ssl::stream_base::server, [self = shared_from_this()](beast::error_code ec) {
        if (ec) return self->Ended(ec);
        self->ReadHead();
      });
    } else {
      ReadHead();
    }
  }

 private:
  const HttpLimits& limits() const { return server_.limits; }

  // An idle connection waits up to idle_timeout for a request's first byte; from there its head
  // has head_timeout. Deadlines are set once per phase: bytes arriving do not extend them.
  void ReadHead() {
    parser_.emplace();
    parser_->header_limit(static_cast<uint32_t>(limits().max_head_bytes));
    parser_->body_limit(limits().max_body_bytes);
    if (buffer_.size() > 0) return ReadRestOfHead();
    Lowest().expires_after(limits().idle_timeout);
    stream_.async_read_some(buffer_.prepare(4096), [self = shared_from_this()](beast::error_code ec, size_t n) {
      if (ec) return self->Ended(ec);
      self->buffer_.commit(n);
      self->ReadRestOfHead();
    });
  }

  void ReadRestOfHead() {
    Lowest().expires_after(limits().head_timeout);
    http::async_read_header(stream_, buffer_, *parser_,
                            [self = shared_from_this()](beast::error_code ec, size_t) { self->OnHead(ec); });
  }

  void OnHead(beast::error_code ec) {
    if (ec == http::error::header_limit) {
      return Refuse(431, "headers", fmt::format("the request head is larger than {} bytes", limits().max_head_bytes));
    }
    if (ec == http::error::body_limit) {
      return Refuse(413, "body",
                    fmt::format("the body is larger than the server's limit of {} bytes", limits().max_body_bytes));
    }
    // A head the parser refuses (a NUL or a bare CR in a field, two different Content-Lengths, a
    // bad chunk size, ...) is a client's error: 400, and the connection closed.
    if (ec.category() == http::make_error_code(http::error::bad_value).category() && ec != http::error::end_of_stream &&
        ec != http::error::partial_message) {
      return Refuse(400, "", fmt::format("a malformed request: {}", ec.message()));
    }
    if (ec) return Ended(ec);  // a timeout too: the stream closed the socket (nginx closes it too)
    const auto& head = parser_->get();
    request_ = HttpRequest{};
    request_.method = std::string(head.method_string());
    request_.target = std::string(head.target());
    ParseTarget(request_.target, request_);
    for (const auto& field : head) {
      request_.headers.emplace(std::string(field.name_string()), std::string(field.value()));
    }
    request_.remote_addr = remote_;
    keep_alive_ = head.keep_alive();
    std::optional<Refusal> refused;
    route_ = server_.Select(request_, refused);
    if (refused) return Refuse(refused->status, refused->field, refused->rule, std::move(refused->headers));
    // Authentication (and whatever else the route checks on the head) before the body is read.
    if (route_->admit) {
      if (std::optional<HttpResponse> refused = route_->admit(request_)) {
        server_.counters.refused_requests++;
        keep_alive_ = false;
        linger_ = true;
        return Write(std::move(*refused));
      }
    }
    if (parser_->is_done()) return OnBody({});
    if (beast::iequals(request_.get_header_value("Expect"), "100-continue")) {
      continue_ = std::make_shared<http::response<http::empty_body>>(http::status::continue_, 11);
      Lowest().expires_after(limits().write_timeout);
      return http::async_write(stream_, *continue_, [self = shared_from_this()](beast::error_code ec, size_t) {
        if (ec) return self->Ended(ec);
        self->ReadBody();
      });
    }
    ReadBody();
  }

  void ReadBody() {
    Lowest().expires_after(limits().body_timeout);
    http::async_read(stream_, buffer_, *parser_,
                     [self = shared_from_this()](beast::error_code ec, size_t) { self->OnBody(ec); });
  }

  void OnBody(beast::error_code ec) {
    if (ec == http::error::body_limit) {
      return Refuse(413, "body",
                    fmt::format("the body is larger than the server's limit of {} bytes", limits().max_body_bytes));
    }
    if (ec) return Ended(ec);
    std::string& body = parser_->get().body();
    const std::string encoding = request_.get_header_value("Content-Encoding");
    if (encoding == "gzip" || encoding == "deflate") {
      std::string inflated;
      if (const int status = Inflate(body, limits().max_body_bytes, inflated); status != 0) {
        return Refuse(status, "body",
                      status == 413 ? fmt::format("the body inflates past the server's limit of {} bytes",
                                                  limits().max_body_bytes)
                                    : fmt::format("the body is not valid {}", encoding));
      }
      request_.body = std::move(inflated);
    } else {
      request_.body = std::move(body);
    }
    if (std::optional<Refusal> refused = CheckBody(request_.body)) {
      return Refuse(refused->status, refused->field, refused->rule);
    }
    // Handlers may wait for the journal: they run on the pool, never on the I/O threads, unless
    // their route says they do not wait. The answer goes back to the connection's strand
    // whenever and from wherever it comes.
    if (route_->on_io) return Handle(shared_from_this());
    net::post(server_.handlers, [self = shared_from_this()] { Handle(self); });
  }

  static void Handle(const std::shared_ptr<Connection>& self) {
    // On the connection's strand already (a route on the I/O thread answering at once), the
    // answer is written at once: a post would wake the other I/O thread for it.
    HttpServer::Respond respond = [self](HttpResponse response) {
      net::dispatch(self->stream_.get_executor(),
                    [self, response = std::move(response)]() mutable { self->Write(std::move(response)); });
    };
    try {
      self->route_->handler(self->request_, respond);
    } catch (const std::exception& e) {
      HttpResponse response;
      self->server_.refuse(response, 500, "", fmt::format("the server failed: {}", e.what()));
      respond(std::move(response));
    }
  }

  // A refusal by the server itself: answered, then the connection closed (what is left of the
  // request is not read).
  void Refuse(int status, std::string_view field, std::string_view rule,
              std::vector<std::pair<std::string, std::string>> headers = {}) {
    server_.counters.refused_requests++;
    HttpResponse response;
    server_.refuse(response, status, field, rule);
    for (auto& [name, value] : headers) response.set_header(std::move(name), std::move(value));
    keep_alive_ = false;
    linger_ = true;
    Write(std::move(response));
  }

  // After a refusal the client may still be sending what was not read (a body too large, one not
  // admitted): it is read and dropped for up to kLingerMs, in a small buffer, so that the client
  // gets to read the answer instead of a reset (nginx's lingering close).
  void Linger() {
    beast::error_code ignored;
    Lowest().socket().shutdown(tcp::socket::shutdown_send, ignored);
    Lowest().expires_after(std::chrono::milliseconds(kLingerMs));
    drain_ = std::make_unique<std::array<char, 16 * 1024>>();
    DrainSome();
  }
  void DrainSome() {
    stream_.async_read_some(net::buffer(*drain_), [self = shared_from_this()](beast::error_code ec, size_t) {
      if (!ec) self->DrainSome();
    });
  }
  static constexpr int kLingerMs = 5'000;

  void Write(HttpResponse response) {
    response_ = std::make_shared<http::response<http::string_body>>(static_cast<http::status>(response.status), 11);
    for (auto& [name, value] : response.headers) response_->set(name, value);
    if (!response.content_type.empty()) response_->set(http::field::content_type, response.content_type);
    response_->body() = std::move(response.body);
    response_->keep_alive(keep_alive_ && !server_.stopped);
    response_->prepare_payload();
    Lowest().expires_after(limits().write_timeout);
    http::async_write(stream_, *response_, [self = shared_from_this()](beast::error_code ec, size_t) {
      if (!ec && self->linger_) return self->Linger();
      if (ec || !self->response_->keep_alive()) return self->Ended(ec);
      self->response_.reset();
      self->ReadHead();
    });
  }

  void Ended(beast::error_code ec) {
    if (ec == beast::error::timeout) server_.counters.timed_out++;
    beast::error_code ignored;
    Lowest().socket().shutdown(tcp::socket::shutdown_send, ignored);
  }

  HttpServer::Impl& server_;
  beast::tcp_stream& Lowest() { return beast::get_lowest_layer(stream_); }

  Stream stream_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  HttpRequest request_;
  const RouteEntry* route_ = nullptr;
  bool keep_alive_ = true, linger_ = false;
  std::unique_ptr<std::array<char, 16 * 1024>> drain_;  // while lingering only
  std::string remote_;
  std::shared_ptr<http::response<http::string_body>> response_;
  std::shared_ptr<http::response<http::empty_body>> continue_;
};

}  // namespace

void HttpServer::Impl::Accept() {
  acceptor.async_accept(net::make_strand(io), [this](beast::error_code ec, tcp::socket socket) {
    if (stopped) return;
    if (ec) {
      // Out of descriptors (EMFILE) and the like: pause rather than spin, then accept again.
      accept_pause.expires_after(std::chrono::milliseconds(10));
      accept_pause.async_wait([this](beast::error_code) { Accept(); });
      return;
    }
    counters.accepted++;
    if (counters.open >= limits.max_connections) {
      counters.refused_connections++;
      beast::error_code ignored;
      socket.close(ignored);
    } else {
      if (tls) {
        std::make_shared<Connection<beast::ssl_stream<beast::tcp_stream>>>(*this, std::move(socket), *tls)->Start();
      } else {
        std::make_shared<Connection<beast::tcp_stream>>(*this, std::move(socket))->Start();
      }
    }
    Accept();
  });
}

HttpServer::HttpServer(HttpLimits limits, Refuse refuse) : impl_(std::make_unique<Impl>(limits, std::move(refuse))) {}

HttpServer::~HttpServer() {
  Stop();
  impl_->handlers.join();  // handlers still running post their answers to a stopped loop
}

std::optional<HttpResponse> HttpServer::Dispatch(HttpRequest request, std::chrono::milliseconds wait) {
  auto req = std::make_shared<HttpRequest>(std::move(request));
  req->params.clear();
  req->matches.clear();
  ParseTarget(req->target, *req);
  HttpResponse response;
  auto refuse = [&](const Refusal& r) {
    impl_->refuse(response, r.status, r.field, r.rule);
    for (const auto& [name, value] : r.headers) response.set_header(name, value);
    return response;
  };
  std::optional<Refusal> refused;
  const RouteEntry* route = impl_->Select(*req, refused);
  if (refused) return refuse(*refused);
  if (route->admit) {
    if (std::optional<HttpResponse> no = route->admit(*req)) return no;
  }
  const std::string encoding = req->get_header_value("Content-Encoding");
  if (encoding == "gzip" || encoding == "deflate") {
    std::string inflated;
    if (const int status = Inflate(req->body, impl_->limits.max_body_bytes, inflated); status != 0) {
      return refuse({status, "body", "does not inflate within the limit"});
    }
    req->body = std::move(inflated);
  }
  if (req->body.size() > impl_->limits.max_body_bytes) return refuse({413, "body", "larger than the limit"});
  if (refused = CheckBody(req->body); refused) return refuse(*refused);
  auto answer = std::make_shared<std::promise<HttpResponse>>();
  std::future<HttpResponse> later = answer->get_future();
  try {
    // `req` lives as long as the answer may come (a long poll answers after this returns).
    route->handler(*req, [answer, req](HttpResponse r) { answer->set_value(std::move(r)); });
  } catch (const std::exception& e) {
    impl_->refuse(response, 500, "", fmt::format("the server failed: {}", e.what()));
    return response;
  }
  if (later.wait_for(wait) != std::future_status::ready) return std::nullopt;
  return later.get();
}

void HttpServer::Route(std::string method, const std::string& pattern, Handler handler, Admit admit) {
  RouteAsync(
      std::move(method), pattern,
      [handler = std::move(handler)](const HttpRequest& request, const Respond& respond) {
        HttpResponse response;
        handler(request, response);
        respond(std::move(response));
      },
      std::move(admit));
}

void HttpServer::RouteAsync(std::string method, const std::string& pattern, AsyncHandler handler, Admit admit) {
  impl_->routes.push_back({std::move(method), std::regex(pattern), std::move(handler), std::move(admit)});
}

void HttpServer::RouteOnIo(std::string method, const std::string& pattern, AsyncHandler handler, Admit admit) {
  impl_->routes.push_back({std::move(method), std::regex(pattern), std::move(handler), std::move(admit), true});
}

void HttpServer::Offload(std::function<void()> work) { net::post(impl_->handlers, std::move(work)); }

Status HttpServer::UseTls(const std::string& certificate, const std::string& key) {
  net::ssl::context context(net::ssl::context::tls_server);
  // TLS 1.2 and 1.3 only; the rest of OpenSSL's defaults (its cipher list) stand.
  context.set_options(net::ssl::context::default_workarounds | net::ssl::context::no_sslv2 |
                      net::ssl::context::no_sslv3 | net::ssl::context::no_tlsv1 | net::ssl::context::no_tlsv1_1);
  beast::error_code ec;
  context.use_certificate_chain_file(certificate, ec);
  if (ec) return Status::Error(fmt::format("{}: not a PEM certificate (chain): {}", certificate, ec.message()));
  context.use_private_key_file(key, net::ssl::context::pem, ec);
  if (ec) return Status::Error(fmt::format("{}: not a PEM private key: {}", key, ec.message()));
  if (SSL_CTX_check_private_key(context.native_handle()) != 1) {
    return Status::Error(fmt::format("{}: is not the key of the certificate in {}", key, certificate));
  }
  impl_->tls.emplace(std::move(context));
  return Status::Ok();
}

Result<int> HttpServer::Bind(const std::string& host, int port) {
  beast::error_code ec;
  const net::ip::address address = net::ip::make_address(host, ec);
  if (ec) return Status::Error(fmt::format("cannot listen on {}:{}: '{}' is not an IP address", host, port, host));
  tcp::acceptor& a = impl_->acceptor;
  const tcp::endpoint endpoint(address, static_cast<uint16_t>(port));
  a.open(endpoint.protocol(), ec);
  // SO_REUSEADDR only: a restarted server may bind while old connections sit in TIME_WAIT, but no
  // second live process may listen on the port (no SO_REUSEPORT).
  if (!ec) a.set_option(net::socket_base::reuse_address(true), ec);
  if (!ec) a.bind(endpoint, ec);
  if (!ec) a.listen(net::socket_base::max_listen_connections, ec);
  if (ec) {
    return Status::Error(
        fmt::format("cannot listen on {}:{}: the port is in use (another server?) or the address is not this "
                    "machine's ({})",
                    host, port, ec.message()));
  }
  return static_cast<int>(a.local_endpoint().port());
}

void HttpServer::Serve() {
  impl_->Accept();
  std::vector<std::thread> threads;
  for (size_t i = 1; i < impl_->limits.io_threads; ++i) threads.emplace_back([this] { impl_->io.run(); });
  impl_->io.run();
  for (std::thread& t : threads) t.join();
}

void HttpServer::Stop() {
  impl_->stopped = true;
  impl_->io.stop();
}

const HttpCounters& HttpServer::counters() const { return impl_->counters; }

}  // namespace joule::api
