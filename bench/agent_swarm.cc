// One process that plays the node agents of a whole campus against `joule server`
// (scripts/campus-bench.sh runs it): each simulated agent speaks `joule agent`'s protocol
// (docs/agent.md) on a keep-alive connection of its own — a heartbeat that is a long poll
// (`known`, `wait_ms`), with its GPUs' readings, answered at once when its assignments change —
// runs the workers it is assigned for a drawn duration, and reports each end the moment it comes,
// as the agent's second connection does (here a shared pool of connections: the server sees the
// same requests). One thread, Boost.Asio.
//
// --parked P: only the first P agents hold their long poll on a connection of their own; the others
// post the same heartbeat every S seconds without waiting (wait_ms=0) over the pool, and so learn
// of new work at their next heartbeat. A machine whose processes may not open more descriptors
// than a few tens of thousands (the server holds one per parked agent) runs a campus this way.
//
//   joule_agent_swarm --server HOST:PORT --node-key FILE --scenario FILE [--nodes N] [--parked P]
//                     [--heartbeat-seconds S] [--mean-seconds M] [--seconds D] [--pool-connections C]
//                     [--connect-rate R] [--source-addresses K] [--stats FILE]
//
// A worker's duration is drawn from an exponential of mean M by its job and run, so that the ranks
// of a gang end together; `sleep X` commands run X seconds. Every 10 s, and at the end, it prints
// one line of figures: requests, errors, round trips of what goes over the pool (ends and the
// polled heartbeats, from when the agent would send: a backlog counts), and how long a node that
// reported an end waited for its next work (reuse; parked and polled agents apart), with the
// workers running.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <queue>
#include <string>
#include <utility>  // before Boost.Asio 1.74, which uses std::exchange without it
#include <vector>

#include <fmt/format.h>
#include <sys/resource.h>
#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <nlohmann/json.hpp>

#include "control/auth.h"
#include "io/scenario.h"
#include "io/server_config.h"

namespace joule::bench {
namespace {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = net::ip::tcp;
using Clock = std::chrono::steady_clock;
using nlohmann::json;

struct Options {
  std::string host = "127.0.0.1", node_key, scenario, stats;  // node_key: the key itself, read from --node-key
  uint16_t port = 0;
  uint32_t nodes = 0;            // 0: all of the fleet's
  uint32_t parked = 0xffffffff;  // agents holding a long poll (the others poll)
  double heartbeat_s = 10, mean_s = 60, seconds = 60;
  uint32_t pool_connections = 256, connect_rate = 5'000, source_addresses = 8;
};

double Ms(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

// Percentiles of a sample, reset after each report.
struct Sample {
  std::vector<double> values;
  std::string Describe() {
    if (values.empty()) return "-";
    std::sort(values.begin(), values.end());
    auto at = [&](double q) { return values[static_cast<size_t>(q * static_cast<double>(values.size() - 1))]; };
    return fmt::format("n={} p50={:.1f} p99={:.1f} max={:.1f}", values.size(), at(0.5), at(0.99), values.back());
  }
};

struct Worker {
  uint64_t job = 0;
  uint32_t rank = 0, run = 0;
  Clock::time_point end;
  bool ended = false;
};

struct Agent {
  std::string name;
  std::string token;  // the node's credential (control::NodeToken)
  uint32_t gpus = 0;
  std::string known = "0";
  std::vector<Worker> workers;
  std::optional<Clock::time_point> idle_since;  // reported an end and has no work yet
  bool parked = true;
  uint64_t energy_j = 0;
};

class Swarm;

// A keep-alive connection that sends one request at a time and hands each answer back.
class Connection : public std::enable_shared_from_this<Connection> {
 public:
  using Done = std::function<void(bool ok, const std::string& body)>;
  Connection(Swarm& swarm, net::io_context& io, tcp::endpoint server, net::ip::address source)
      : swarm_(swarm), stream_(io), server_(server), source_(source) {}
  void Send(std::string target, const std::string& token, std::string body, Done done);
  bool busy() const { return busy_; }

 private:
  void Connect();
  void Write();
  Swarm& swarm_;
  beast::tcp_stream stream_;
  tcp::endpoint server_;
  net::ip::address source_;
  bool connected_ = false, busy_ = false;
  http::request<http::string_body> request_;
  http::response<http::string_body> response_;
  beast::flat_buffer buffer_;
  Done done_;
};

class Swarm {
 public:
  Swarm(Options o, net::io_context& io) : o_(std::move(o)), io_(io), ends_timer_(io), stats_timer_(io) {}

  int Run() {
    Result<io::Scenario> scenario = io::LoadScenario(o_.scenario);
    if (!scenario.ok()) {
      fmt::print(stderr, "joule_agent_swarm: {}\n", scenario.status().message());
      return 2;
    }
    const Fleet& fleet = scenario->fleet;
    const uint32_t n = o_.nodes ? std::min<uint32_t>(o_.nodes, fleet.nodes().size()) : fleet.nodes().size();
    agents_.resize(n);
    for (uint32_t i = 0; i < n; ++i) {
      agents_[i].name = std::string(fleet.NodeName(NodeId(i)));
      agents_[i].token = control::NodeToken(o_.node_key, agents_[i].name);
      agents_[i].gpus = fleet.node_type(NodeId(i)).accelerators;
    }
    const tcp::endpoint server(net::ip::make_address(o_.host), o_.port);
    const uint32_t parked = std::min(n, o_.parked);
    for (uint32_t i = 0; i < parked; ++i) polls_.push_back(std::make_shared<Connection>(*this, io_, server, Source(i)));
    for (uint32_t i = 0; i < o_.pool_connections; ++i) {
      pool_.push_back(std::make_shared<Connection>(*this, io_, server, Source(n + i)));
    }
    // The polled agents' heartbeats, spread evenly over the interval in 100 ms slots.
    slots_.resize(std::max<size_t>(1, static_cast<size_t>(o_.heartbeat_s * 10)));
    for (uint32_t i = parked; i < n; ++i) {
      agents_[i].parked = false;
      slots_[i % slots_.size()].push_back(i);
    }
    started_ = Clock::now();
    ConnectSome(0, parked);
    if (parked < n) Slot(started_);
    Stats();
    io_.run();
    return 0;
  }

  const Options& options() const { return o_; }
  uint64_t connect_failures = 0;

 private:
  net::ip::address Source(uint32_t i) const {
    return net::ip::make_address_v4(0x7f000002u + i % std::max<uint32_t>(1, o_.source_addresses));
  }

  // Agents start at --connect-rate a second, as a campus's nodes boot: a listen backlog is finite.
  void ConnectSome(uint32_t from, uint32_t parked) {
    const uint32_t batch = std::max<uint32_t>(1, o_.connect_rate / 100);
    const uint32_t to = std::min<uint32_t>(from + batch, parked);
    for (uint32_t i = from; i < to; ++i) Poll(i, /*wait=*/false);
    if (to >= parked) return;
    auto timer = std::make_shared<net::steady_timer>(io_, std::chrono::milliseconds(10));
    timer->async_wait([this, timer, to, parked](beast::error_code) { ConnectSome(to, parked); });
  }

  // Every 100 ms, the polled agents of the next slot post their heartbeat.
  void Slot(Clock::time_point at) {
    for (uint32_t i : slots_[slot_++ % slots_.size()]) queue_.push_back({i, true, Clock::now()});
    Drain();
    auto timer = std::make_shared<net::steady_timer>(io_, at + std::chrono::milliseconds(100));
    timer->async_wait([this, timer, at](beast::error_code) { Slot(at + std::chrono::milliseconds(100)); });
  }

  std::string Body(const Agent& a, bool with_gpus) {
    std::string running, ended;
    for (const Worker& w : a.workers) {
      std::string& list = w.ended ? ended : running;
      list += fmt::format("{}{{\"job\":{},\"rank\":{},\"run\":{},\"energy_joules\":{}{}}}", list.empty() ? "" : ",",
                          w.job, w.rank, w.run, a.energy_j, w.ended ? ",\"exit_code\":0" : "");
    }
    std::string body = fmt::format(R"({{"address":"10.{}.{}.{}","ended":[{}],"running":[{}])", 0, 0, 1, ended, running);
    if (with_gpus && a.gpus > 0) {
      std::string devices;
      const bool busy = std::any_of(a.workers.begin(), a.workers.end(), [](const Worker& w) { return !w.ended; });
      for (uint32_t g = 0; g < a.gpus; ++g) {
        devices += fmt::format(
            R"({}{{"index":{},"uuid":"GPU-swarm-{}","model":"simulated","memory_mib":81920,"power_watts":{},)"
            R"("energy_joules":{},"temperature_c":{},"utilization_percent":{},"memory_used_mib":0,)"
            R"("ecc_corrected":0,"ecc_uncorrected":0,"xid_errors":0,"last_xid":0,"power_limit_watts":700.0}})",
            g > 0 ? "," : "", g, g, busy ? 650.0 : 70.0, a.energy_j, busy ? 61 : 34, busy ? 97 : 0);
      }
      body += fmt::format(R"(,"gpus":{{"source":"simulated","count":{},"driver_version":"swarm","devices":[{}]}})",
                          a.gpus, devices);
    }
    return body + "}";
  }

  // The long poll: sent again as soon as it is answered.
  void Poll(uint32_t i, bool wait) {
    Agent& a = agents_[i];
    a.energy_j += 70 * static_cast<uint64_t>(o_.heartbeat_s);
    const auto wait_ms = wait ? static_cast<uint64_t>(o_.heartbeat_s * 1000) : 0;
    const auto sent = Clock::now();
    polls_[i]->Send(fmt::format("/api/v1/agents/{}/heartbeat?known={}&wait_ms={}", a.name, a.known, wait_ms), a.token,
                    Body(a, true), [this, i, sent, wait](bool ok, const std::string& body) {
                      heartbeats_++;
                      if (!wait) first_rtt_.values.push_back(Ms(Clock::now() - sent));
                      if (!ok || !Apply(i, body)) {
                        errors_++;
                        auto timer = std::make_shared<net::steady_timer>(io_, std::chrono::seconds(1));
                        timer->async_wait([this, timer, i](beast::error_code) { Poll(i, false); });
                        return;
                      }
                      Poll(i, true);
                    });
  }

  // Applies an answer: new workers start (their ends drawn), those no longer assigned stop.
  bool Apply(uint32_t i, const std::string& body) {
    const json answer = json::parse(body, nullptr, false);
    if (!answer.is_object() || !answer.contains("assignments")) return false;
    Agent& a = agents_[i];
    a.known = answer.value("version", "0");
    std::vector<Worker> next;
    const auto now = Clock::now();
    bool fresh = false;
    for (const json& x : answer["assignments"]) {
      Worker w{x["job"].get<uint64_t>(), x["rank"].get<uint32_t>(), x["run"].get<uint32_t>(), {}, false};
      auto old = std::find_if(a.workers.begin(), a.workers.end(),
                              [&](const Worker& o) { return o.job == w.job && o.rank == w.rank && o.run == w.run; });
      if (old != a.workers.end()) {
        next.push_back(*old);
        continue;
      }
      fresh = true;
      w.end = now + Duration(w.job, w.run, x);
      ends_.push({w.end, i, w.job, w.rank, w.run});
      next.push_back(w);
      started_workers_++;
    }
    // Ended workers stay until an answer no longer lists them (the report was applied).
    for (const Worker& w : a.workers) {
      const bool listed = std::any_of(next.begin(), next.end(), [&](const Worker& o) {
        return o.job == w.job && o.rank == w.rank && o.run == w.run;
      });
      if (!listed && !w.ended) stopped_workers_++;
    }
    a.workers = std::move(next);
    if (fresh && a.idle_since) {
      (a.parked ? reuse_parked_ : reuse_polled_).values.push_back(Ms(now - *a.idle_since));
      a.idle_since.reset();
    }
    ArmEnds();
    return true;
  }

  Clock::duration Duration(uint64_t job, uint32_t run, const json& x) {
    const json& command = x["command"];
    if (command.is_array() && !command.empty() && command[0] == "sleep" && x["args"].is_array() && !x["args"].empty()) {
      return std::chrono::duration_cast<Clock::duration>(
          std::chrono::duration<double>(std::atof(x["args"][0].get<std::string>().c_str())));
    }
    // A hash of (job, run) drawn as an exponential: every rank of a gang ends at once.
    uint64_t h = (job * 0x9E3779B97F4A7C15ull) ^ (run * 0xC2B2AE3D27D4EB4Full);
    h ^= h >> 31;
    h *= 0xBF58476D1CE4E5B9ull;
    h ^= h >> 29;
    const double u = (static_cast<double>(h >> 11) + 0.5) / 9007199254740992.0;
    return std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(-o_.mean_s * std::log(u)));
  }

  struct End {
    Clock::time_point at;
    uint32_t agent;
    uint64_t job;
    uint32_t rank, run;
    bool operator>(const End& o) const { return at > o.at; }
  };

  void ArmEnds() {
    if (ends_.empty() || (armed_ && *armed_ <= ends_.top().at)) return;
    armed_ = ends_.top().at;
    ends_timer_.expires_at(*armed_);
    ends_timer_.async_wait([this](beast::error_code ec) {
      if (ec) return;
      armed_.reset();
      const auto now = Clock::now();
      while (!ends_.empty() && ends_.top().at <= now) {
        const End e = ends_.top();
        ends_.pop();
        Agent& a = agents_[e.agent];
        for (Worker& w : a.workers) {
          if (w.job == e.job && w.rank == e.rank && w.run == e.run && !w.ended) {
            w.ended = true;
            queue_.push_back({e.agent, false, now});
          }
        }
      }
      Drain();
      ArmEnds();
    });
  }

  // What goes over the pool (ends, polled heartbeats) takes the first free connection, in order.
  struct Send {
    uint32_t agent;
    bool heartbeat;  // with the GPUs' readings; else an end's quick report
    Clock::time_point due;
  };
  void Drain() {
    for (auto& c : pool_) {
      if (queue_.empty()) return;
      if (c->busy()) continue;
      const Send send = queue_.front();
      queue_.pop_front();
      Agent& a = agents_[send.agent];
      if (!send.heartbeat &&
          std::none_of(a.workers.begin(), a.workers.end(), [](const Worker& w) { return !w.ended; })) {
        a.idle_since = send.due;
      }
      c->Send(fmt::format("/api/v1/agents/{}/heartbeat", a.name), a.token, Body(a, send.heartbeat),
              [this, send](bool ok, const std::string& body) {
                (send.heartbeat ? heartbeats_ : reports_)++;
                pool_rtt_.values.push_back(Ms(Clock::now() - send.due));
                if (!ok || !Apply(send.agent, body)) errors_++;
                Drain();
              });
    }
  }

  void Stats() {
    stats_timer_.expires_after(std::chrono::seconds(10));
    stats_timer_.async_wait([this](beast::error_code) {
      const double t = std::chrono::duration<double>(Clock::now() - started_).count();
      uint64_t running = 0;
      for (const Agent& a : agents_) {
        for (const Worker& w : a.workers) running += w.ended ? 0 : 1;
      }
      const std::string line = fmt::format(
          "t={:.0f}s agents={} heartbeats={} reports={} errors={} connect_failures={} workers_running={} "
          "started={} stopped={} backlog={} | first heartbeat ms: {} | pool round trip ms: {} | end to next work "
          "ms, parked: {} | polled: {}",
          t, agents_.size(), heartbeats_, reports_, errors_, connect_failures, running, started_workers_,
          stopped_workers_, queue_.size(), first_rtt_.Describe(), pool_rtt_.Describe(), reuse_parked_.Describe(),
          reuse_polled_.Describe());
      std::printf("%s\n", line.c_str());
      std::fflush(stdout);
      if (!o_.stats.empty()) {
        if (FILE* f = std::fopen(o_.stats.c_str(), "a")) {
          std::fprintf(f, "%s\n", line.c_str());
          std::fclose(f);
        }
      }
      first_rtt_.values.clear();
      pool_rtt_.values.clear();
      reuse_parked_.values.clear();
      reuse_polled_.values.clear();
      if (t >= o_.seconds) {
        io_.stop();
        return;
      }
      Stats();
    });
  }

  Options o_;
  net::io_context& io_;
  std::vector<Agent> agents_;
  std::vector<std::shared_ptr<Connection>> polls_, pool_;
  std::vector<std::vector<uint32_t>> slots_;
  uint64_t slot_ = 0;
  std::priority_queue<End, std::vector<End>, std::greater<>> ends_;
  std::optional<Clock::time_point> armed_;
  net::steady_timer ends_timer_, stats_timer_;
  std::deque<Send> queue_;
  Clock::time_point started_;
  uint64_t heartbeats_ = 0, reports_ = 0, errors_ = 0, started_workers_ = 0, stopped_workers_ = 0;
  Sample first_rtt_, pool_rtt_, reuse_parked_, reuse_polled_;
};

void Connection::Send(std::string target, const std::string& token, std::string body, Done done) {
  busy_ = true;
  done_ = std::move(done);
  request_ = {http::verb::post, target, 11};
  request_.set(http::field::host, "joule");
  request_.set(http::field::authorization, "Bearer " + token);
  request_.set(http::field::content_type, "application/json");
  request_.body() = std::move(body);
  request_.prepare_payload();
  if (connected_) return Write();
  Connect();
}

void Connection::Connect() {
  beast::error_code ec;
  stream_.socket().close(ec);
  stream_.socket().open(tcp::v4(), ec);
  stream_.socket().bind(tcp::endpoint(source_, 0), ec);
  if (ec) {
    swarm_.connect_failures++;
    busy_ = false;
    return done_(false, "");
  }
  stream_.expires_after(std::chrono::seconds(30));
  stream_.async_connect(server_, [self = shared_from_this()](beast::error_code ec) {
    if (ec) {
      self->swarm_.connect_failures++;
      self->busy_ = false;
      return self->done_(false, "");
    }
    self->connected_ = true;
    beast::error_code ignored;
    self->stream_.socket().set_option(tcp::no_delay(true), ignored);
    self->Write();
  });
}

void Connection::Write() {
  // A long poll waits up to a minute on the server; beyond that the connection is taken as lost.
  stream_.expires_after(std::chrono::seconds(90));
  http::async_write(stream_, request_, [self = shared_from_this()](beast::error_code ec, size_t) {
    if (ec) {
      self->connected_ = false;
      self->busy_ = false;
      return self->done_(false, "");
    }
    self->response_ = {};
    http::async_read(self->stream_, self->buffer_, self->response_, [self](beast::error_code ec, size_t) {
      self->busy_ = false;
      const bool ok = !ec && self->response_.result() == http::status::ok;
      if (ec || !self->response_.keep_alive()) self->connected_ = false;
      self->done_(ok, self->response_.body());
    });
  });
}

}  // namespace
}  // namespace joule::bench

int main(int argc, char** argv) {
  using joule::bench::Options;
  Options o;
  std::string server;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i], value = argv[i + 1];
    if (flag == "--server") {
      server = value;
    } else if (flag == "--node-key") {
      joule::Result<std::string> key = joule::io::ReadNodeKey(value);
      if (!key.ok()) {
        std::fprintf(stderr, "joule_agent_swarm: --node-key %s\n", key.status().message().c_str());
        return 2;
      }
      o.node_key = *key;
    } else if (flag == "--scenario") {
      o.scenario = value;
    } else if (flag == "--nodes") {
      o.nodes = static_cast<uint32_t>(std::stoul(value));
    } else if (flag == "--heartbeat-seconds") {
      o.heartbeat_s = std::stod(value);
    } else if (flag == "--mean-seconds") {
      o.mean_s = std::stod(value);
    } else if (flag == "--seconds") {
      o.seconds = std::stod(value);
    } else if (flag == "--parked") {
      o.parked = static_cast<uint32_t>(std::stoul(value));
    } else if (flag == "--pool-connections") {
      o.pool_connections = static_cast<uint32_t>(std::stoul(value));
    } else if (flag == "--connect-rate") {
      o.connect_rate = static_cast<uint32_t>(std::stoul(value));
    } else if (flag == "--source-addresses") {
      o.source_addresses = static_cast<uint32_t>(std::stoul(value));
    } else if (flag == "--stats") {
      o.stats = value;
    } else {
      std::fprintf(stderr, "joule_agent_swarm: unknown flag %s\n", flag.c_str());
      return 2;
    }
  }
  const size_t colon = server.rfind(':');
  if (colon == std::string::npos || o.node_key.empty() || o.scenario.empty()) {
    std::fprintf(stderr,
                 "usage: joule_agent_swarm --server HOST:PORT --node-key FILE --scenario FILE [--nodes N] [--parked P] "
                 "[--heartbeat-seconds S] [--mean-seconds M] [--seconds D] [--pool-connections C] "
                 "[--connect-rate R] [--source-addresses K] [--stats FILE]\n");
    return 2;
  }
  o.host = server.substr(0, colon);
  o.port = static_cast<uint16_t>(std::stoul(server.substr(colon + 1)));
  // Two descriptors per agent at most: take what the system allows.
  if (rlimit files{}; ::getrlimit(RLIMIT_NOFILE, &files) == 0 && files.rlim_cur < files.rlim_max) {
    files.rlim_cur = files.rlim_max;
    (void)::setrlimit(RLIMIT_NOFILE, &files);
  }
  boost::asio::io_context io(1);
  joule::bench::Swarm swarm(o, io);
  return swarm.Run();
}
