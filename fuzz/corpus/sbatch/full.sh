#!/bin/bash
#SBATCH -J big
#SBATCH --nodes=64
#SBATCH --gpus=512
#SBATCH --ntasks-per-node=8
#SBATCH --time=2-12:00:00
#SBATCH --partition=batch
#SBATCH --qos=high
#SBATCH --account=lab-a
#SBATCH --dependency=afterok:12:13
srun python train.py
