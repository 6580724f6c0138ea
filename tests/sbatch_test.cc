// `#SBATCH` directives as Slurm users write them: honoured, or refused naming line and reason.
#include "io/sbatch.h"

#include <gtest/gtest.h>

namespace joule::io {
namespace {

constexpr TimeMs kS = 1000, kM = 60 * kS, kH = 60 * kM, kD = 24 * kH;

TEST(SbatchTest, SlurmTimeFormats) {
  EXPECT_EQ(ParseSlurmTime("90"), 90 * kM);
  EXPECT_EQ(ParseSlurmTime("90:30"), 90 * kM + 30 * kS);
  EXPECT_EQ(ParseSlurmTime("12:00:05"), 12 * kH + 5 * kS);
  EXPECT_EQ(ParseSlurmTime("2-12"), 2 * kD + 12 * kH);
  EXPECT_EQ(ParseSlurmTime("2-12:30"), 2 * kD + 12 * kH + 30 * kM);
  EXPECT_EQ(ParseSlurmTime("1-00:00:01"), kD + kS);
  // Numbers whose product in milliseconds would overflow (found by sbatch_fuzz) are refused.
  for (const char* bad : {"", "0", "1:2:3:4", "x", "1-", "-5", "UNLIMITED", "1-2:3:4:5", "1.5", "2333333333333334",
                          "1-9999999999999", "1:9999999999999:0"}) {
    EXPECT_FALSE(ParseSlurmTime(bad).has_value()) << bad;
  }
}

TEST(SbatchTest, DirectivesBecomeARequest) {
  const std::string script =
      "#!/bin/bash\n"
      "# a comment\n"
      "#SBATCH --job-name=llama-70b\n"
      "#SBATCH -N 16\n"
      "#SBATCH --gpus-per-node=8\n"
      "#SBATCH --ntasks-per-node 8\n"
      "#SBATCH --time=2-00:00:00\n"
      "#SBATCH -p gb200\n"
      "#SBATCH --qos=high\n"
      "#SBATCH -Amistral-ai\n"
      "#SBATCH --dependency=afterok:41:42\n"
      "\n"
      "srun python train.py\n"
      "#SBATCH --nodes=999\n";  // after the first command: a comment, as in Slurm
  Result<BatchJob> job = ParseBatchScript(script, "train.sh");
  ASSERT_TRUE(job.ok()) << job.status().message();
  EXPECT_EQ(job->name, "llama-70b");
  EXPECT_EQ(job->nodes, 16u);
  EXPECT_EQ(job->gpus_per_node, 8u);
  EXPECT_EQ(job->tasks_per_node, 8u);
  EXPECT_EQ(job->time_limit, 2 * kD);
  EXPECT_EQ(job->partition, "gb200");
  EXPECT_EQ(job->qos, "high");
  EXPECT_EQ(job->account, "mistral-ai");
  EXPECT_EQ(job->after_ok, (std::vector<JobId>{41, 42}));
  EXPECT_EQ(job->script, script);
  // --gpus is the total: spread over the nodes.
  job = ParseBatchScript("#SBATCH --nodes=4\n#SBATCH -G 32\n", "s");
  ASSERT_TRUE(job.ok());
  EXPECT_EQ(job->gpus_per_node, 8u);
}

TEST(SbatchTest, WhatCannotBeHonouredIsRefusedWithLineAndReason) {
  auto error = [](const std::string& script) {
    Result<BatchJob> job = ParseBatchScript(script, "job.sh");
    return job.ok() ? std::string("(accepted)") : job.status().message();
  };
  EXPECT_EQ(error("#SBATCH --exclusive\n"), "job.sh:1: --exclusive: not supported");
  EXPECT_EQ(error("#SBATCH --nodes\n"), "job.sh:1: --nodes: needs a value");
  EXPECT_EQ(error("#SBATCH --mem=64G\n"), "job.sh:1: --mem: not supported");
  EXPECT_EQ(error("\n#SBATCH -x node1\n"), "job.sh:2: -x: not supported");
  EXPECT_EQ(error("#SBATCH --time=forever\n"),
            "job.sh:1: --time: 'forever': must be minutes, MM:SS, HH:MM:SS, D-HH, D-HH:MM or D-HH:MM:SS, above 0");
  EXPECT_EQ(error("#SBATCH --nodes=2-4\n"),
            "job.sh:1: --nodes: '2-4': must be a node count (a range min-max is not supported)");
  EXPECT_EQ(error("#SBATCH --gpus=h100:8\n"),
            "job.sh:1: --gpus: 'h100:8': must be a count (name the GPU type with --partition)");
  EXPECT_EQ(error("#SBATCH --dependency=afterany:4\n"),
            "job.sh:1: --dependency: 'afterany': only afterok:ID[:ID...] is supported");
  EXPECT_EQ(error("#SBATCH --dependency=afterok:x\n"), "job.sh:1: --dependency: 'x': not a job id");
  EXPECT_EQ(error("#SBATCH --partition=a,b\n"), "job.sh:1: --partition: one partition only");
  EXPECT_EQ(error("#SBATCH nodes=2\n"), "job.sh:1: #SBATCH: expected an option such as --nodes=2");
  EXPECT_EQ(error("#SBATCH -N 3\n#SBATCH --gpus=16\n"),
            "job.sh: --gpus 16 cannot be spread evenly over 3 nodes (gangs have identical workers)");
  EXPECT_EQ(error("#SBATCH -N 2\n#SBATCH --gpus=16\n#SBATCH --gpus-per-node=4\n"),
            "job.sh: --gpus 16 disagrees with --gpus-per-node 4 on 2 nodes");
}

}  // namespace
}  // namespace joule::io
