// Load generator for `joule server` on loopback (scripts/server-bench.sh runs it): job submits
// over keep-alive connections, either as fast as C connections allow (closed loop: throughput) or
// at a fixed rate (open loop: latency measured from each request's scheduled time, so a stalled
// server is charged for the requests it delayed). With --agents NODE,NODE,... it posts node
// agents' heartbeats instead (each with eight GPUs' readings, as `joule agent` sends them), round
// robin over those nodes. --spec JSON submits that job spec instead of the default training job.
// Prints one line of figures.
//   joule_server_load URL TOKEN --connections C --seconds S [--rate R] [--total N] [--agents NODES]
//                     [--spec JSON]
#include <httplib.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "control/auth.h"
#include "io/server_config.h"

namespace {

using Clock = std::chrono::steady_clock;

struct Worker {
  std::vector<double> latency_ms;
  uint64_t ok = 0, failed = 0;
};

// A heartbeat as `joule agent` sends it from an idle node with eight GPUs.
std::string Heartbeat(uint64_t n) {
  std::string gpus;
  for (int g = 0; g < 8; ++g) {
    gpus += std::string(g > 0 ? "," : "") + "{\"index\":" + std::to_string(g) + ",\"uuid\":\"GPU-load-" +
            std::to_string(g) +
            "\",\"model\":\"NVIDIA H100 80GB HBM3\",\"memory_mib\":81920,\"power_watts\":70.5,"
            "\"energy_joules\":" +
            std::to_string(n * 70) +
            ",\"temperature_c\":34,\"utilization_percent\":0,\"memory_used_mib\":0,\"ecc_corrected\":0,"
            "\"ecc_uncorrected\":0,\"xid_errors\":0,\"last_xid\":0,\"power_limit_watts\":700.0}";
  }
  return "{\"address\":\"10.0.0.1\",\"ended\":[],\"running\":[],\"gpus\":{\"source\":\"nvml\",\"count\":8,"
         "\"driver_version\":\"550.54.15\",\"devices\":[" +
         gpus + "]}}";
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr,
                 "usage: joule_server_load URL TOKEN [--connections C] [--seconds S] [--rate R] [--total N] "
                 "[--agents NODE,...] [--spec JSON]\n"
                 "  with --agents, TOKEN is the node key's file: each heartbeat carries its node's credential\n");
    return 2;
  }
  const std::string url = argv[1], token = argv[2];
  int connections = 32;
  double seconds = 10, rate = 0;
  uint64_t total = 0;               // stop after this many submits in all (0: no limit)
  std::vector<std::string> agents;  // heartbeats for these nodes instead of submits
  std::string spec;                 // the job spec submitted ("": a training job of 1-4 workers)
  for (int i = 3; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    if (flag == "--connections") {
      connections = std::atoi(argv[i + 1]);
    } else if (flag == "--seconds") {
      seconds = std::atof(argv[i + 1]);
    } else if (flag == "--rate") {
      rate = std::atof(argv[i + 1]);
    } else if (flag == "--total") {
      total = std::strtoull(argv[i + 1], nullptr, 10);
    } else if (flag == "--spec") {
      spec = argv[i + 1];
    } else if (flag == "--agents") {
      for (std::string list = argv[i + 1]; !list.empty();) {
        const size_t comma = list.find(',');
        agents.push_back(list.substr(0, comma));
        list = comma == std::string::npos ? "" : list.substr(comma + 1);
      }
    } else {
      std::fprintf(stderr, "joule_server_load: unknown flag %s\n", flag.c_str());
      return 2;
    }
  }
  std::map<std::string, std::string> node_tokens;  // --agents: each node's credential, from the key in TOKEN's file
  if (!agents.empty()) {
    joule::Result<std::string> key = joule::io::ReadNodeKey(token);
    if (!key.ok()) {
      std::fprintf(stderr, "joule_server_load: %s\n", key.status().message().c_str());
      return 2;
    }
    for (const std::string& node : agents) node_tokens[node] = joule::control::NodeToken(*key, node);
  }
  std::vector<Worker> workers(connections);
  std::vector<std::thread> threads;
  const Clock::time_point start = Clock::now() + std::chrono::milliseconds(200);
  const Clock::time_point end =
      start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
  std::atomic<uint64_t> serial{0};
  threads.reserve(connections);
  for (int w = 0; w < connections; ++w) {
    threads.emplace_back([&, w] {
      httplib::Client client(url);
      client.set_keep_alive(true);
      client.set_tcp_nodelay(true);
      client.set_read_timeout(30);
      const httplib::Headers headers{{"Authorization", "Bearer " + token}};
      client.Get("/healthz");  // connect before the clock starts
      Worker& me = workers[w];
      // Open loop: this connection's share of the rate, evenly spaced and offset per connection.
      const double interval_s = rate > 0 ? connections / rate : 0;
      Clock::time_point next = start + std::chrono::duration_cast<Clock::duration>(
                                           std::chrono::duration<double>(interval_s * w / connections));
      std::this_thread::sleep_until(start);
      while (true) {
        Clock::time_point scheduled = Clock::now();
        if (rate > 0) {
          if (next >= end) break;
          std::this_thread::sleep_until(next);
          scheduled = next;
          next += std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(interval_s));
        } else if (scheduled >= end) {
          break;
        }
        const uint64_t n = serial++;
        if (total > 0 && n >= total) break;
        const std::string body = !agents.empty() ? Heartbeat(n)
                                 : !spec.empty() ? spec
                                                 : "{\"name\":\"load-" + std::to_string(n) +
                                                       "\",\"workers\":" + std::to_string(1 + n % 4) +
                                                       ",\"resources\":{\"gpus\":" + std::to_string(1 + n % 8) +
                                                       "},\"time_limit\":86400,\"command\":[\"python\",\"train.py\"]}";
        const std::string path =
            agents.empty() ? "/api/v1/jobs" : "/api/v1/agents/" + agents[n % agents.size()] + "/heartbeat";
        httplib::Result r = client.Post(
            path,
            agents.empty() ? headers
                           : httplib::Headers{{"Authorization", "Bearer " + node_tokens.at(agents[n % agents.size()])}},
            body, "application/json");
        const double ms = std::chrono::duration<double, std::milli>(Clock::now() - scheduled).count();
        if (r && (r->status == 201 || (!agents.empty() && r->status == 200))) {
          me.ok++;
          me.latency_ms.push_back(ms);
        } else {
          me.failed++;
        }
      }
    });
  }
  for (std::thread& t : threads) t.join();
  const double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
  std::vector<double> all;
  uint64_t ok = 0, failed = 0;
  for (const Worker& w : workers) {
    ok += w.ok;
    failed += w.failed;
    all.insert(all.end(), w.latency_ms.begin(), w.latency_ms.end());
  }
  std::sort(all.begin(), all.end());
  auto pct = [&](double p) {
    return all.empty() ? 0.0 : all[std::min(all.size() - 1, static_cast<size_t>(p * all.size()))];
  };
  std::printf("%s %llu ok, %llu failed in %.1f s: %.0f/s; latency ms p50 %.2f p99 %.2f p99.9 %.2f max %.2f\n",
              agents.empty() ? "submits" : "heartbeats", static_cast<unsigned long long>(ok),
              static_cast<unsigned long long>(failed), elapsed, ok / elapsed, pct(0.5), pct(0.99), pct(0.999),
              all.empty() ? 0.0 : all.back());
  return failed == 0 ? 0 : 1;
}
