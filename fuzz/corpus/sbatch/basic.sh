#!/bin/bash
#SBATCH --job-name=eval
#SBATCH --nodes=1
#SBATCH --gpus-per-node=4
#SBATCH --time=30
srun eval.sh
