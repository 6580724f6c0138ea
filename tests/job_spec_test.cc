// The job spec users submit (YAML or JSON): every field read, every mistake named with its place.
#include "io/job_spec.h"

#include <gtest/gtest.h>

namespace joule::io {
namespace {

std::string ErrorOf(const std::string& text) {
  Result<SubmitSpec> s = ParseJobSpec(text, "body");
  return s.ok() ? "(accepted)" : s.status().message();
}

TEST(JobSpecTest, ReadsEveryFieldFromYamlAndJson) {
  const std::string yaml = R"(name: llama-70b
tenant: mistral-ai
queue: gb200
priority_class: high
workers: 16
resources: {gpus: 4, gpu_type: gb200, cpu: 64, memory_gib: 480}
topology: require-nvlink-domain
time_limit: 2-00:00:00
checkpoint_interval: 600
after_ok: [41, 42]
failure_policy: {max_restarts: 100, backoff: 30, spare_nodes: 2}
command: [torchrun, train.py]
args: [--config, 70b.yaml]
env: {NCCL_DEBUG: WARN}
)";
  Result<SubmitSpec> s = ParseJobSpec(yaml, "spec.yaml");
  ASSERT_TRUE(s.ok()) << s.status().message();
  EXPECT_EQ(s->name, "llama-70b");
  EXPECT_EQ(s->tenant, "mistral-ai");
  EXPECT_EQ(s->workers, 16u);
  EXPECT_EQ(s->gpus, 4u);
  EXPECT_EQ(s->gpu_type, "gb200");
  EXPECT_EQ(s->cpu, 64'000);
  EXPECT_EQ(s->memory, 480 * 1024);
  EXPECT_EQ(s->topology, TopologyRule::kRequireNvlinkDomain);
  EXPECT_EQ(s->time_limit, TimeMs{2} * 24 * 3'600'000);
  EXPECT_EQ(s->checkpoint_interval, 600'000);
  EXPECT_EQ(s->after_ok, (std::vector<JobId>{41, 42}));
  EXPECT_EQ(s->max_restarts, 100u);
  EXPECT_EQ(s->restart_backoff, 30'000);
  EXPECT_EQ(s->spare_nodes, 2u);
  EXPECT_EQ(s->command, (std::vector<std::string>{"torchrun", "train.py"}));
  EXPECT_EQ(s->env.at("NCCL_DEBUG"), "WARN");
  Result<SubmitSpec> json = ParseJobSpec(
      R"({"name": "eval", "workers": 1, "resources": {"gpus": 1}, "time_limit": "0:30:00", "command": ["sh", "-c", "true"]})",
      "body");
  ASSERT_TRUE(json.ok()) << json.status().message();
  EXPECT_EQ(json->time_limit, 30 * 60'000);
}

TEST(JobSpecTest, MistakesAreNamedWithTheirPlace) {
  EXPECT_NE(ErrorOf("name: a\nnodes: 3\n").find("body:2:1: nodes: unknown key"), std::string::npos);
  EXPECT_NE(ErrorOf("workers: 2\n").find("name: is required"), std::string::npos) << ErrorOf("workers: 2\n");
  EXPECT_NE(ErrorOf("name: " + std::string(64, 'x') + "\n").find("name: must be 1 to 63 characters"),
            std::string::npos);
  EXPECT_NE(ErrorOf("name: a\nworkers: 1.5\n").find("workers: must be a whole number"), std::string::npos);
  EXPECT_NE(ErrorOf("name: a\nresources: {gpus: 2, disk: 5}\n").find("resources.disk: unknown key"), std::string::npos);
  EXPECT_EQ(ParseJobSpec("name: a\ntime_limit: 90\n", "b")->time_limit, 90'000);  // a number: seconds
  EXPECT_NE(ErrorOf("name: a\ntime_limit: soon\n").find("time_limit: must be seconds or a Slurm time"),
            std::string::npos);
  EXPECT_NE(ErrorOf("name: a\ntopology: ring\n").find("topology: must be any, prefer-compact or require-nvlink-domain"),
            std::string::npos);
  EXPECT_NE(ErrorOf("name: a\nafter_ok: [x]\n").find("after_ok[0]: must be a job id"), std::string::npos);
  EXPECT_NE(ErrorOf("name: a\nfailure_policy: {spare_nodes: 1}\n").find("hot spares are for workers with GPUs"),
            std::string::npos);
  EXPECT_NE(ErrorOf("name: a\nargs: [x]\n").find("args: needs a command"), std::string::npos);
  EXPECT_NE(ErrorOf("name: a\nenv: {A: [1]}\n").find("env.A: must be a string"), std::string::npos);
  EXPECT_EQ(ErrorOf("[1, 2]"), "body: a job spec must be a mapping");
  EXPECT_NE(ErrorOf("name: [").find("body"), std::string::npos);  // a syntax error, located
}

}  // namespace
}  // namespace joule::io
