#!/usr/bin/env python3
"""A 2-rank gang worker for the agent tests: rank 0 listens on MASTER_ADDR:MASTER_PORT, the other
ranks connect and send a line; rank 0 writes what it heard to $RESULT_DIR/result-$JOULE_JOB_ID.
Optional: $SLEEP seconds first; $EXIT, the exit code."""
import os
import socket
import sys
import time

rank, size = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
addr, port = os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"])
with open(os.path.join(os.environ["RESULT_DIR"], f"pid-{os.environ['JOULE_JOB_ID']}-{rank}"), "w") as f:
    f.write(str(os.getpid()))
time.sleep(float(os.environ.get("SLEEP", "0")))
if rank == 0:
    server = socket.create_server((addr, port), reuse_port=False)
    server.settimeout(60)
    heard = []
    for _ in range(size - 1):
        conn, _ = server.accept()
        heard.append(conn.makefile().readline().strip())
        conn.close()
    with open(os.path.join(os.environ["RESULT_DIR"], f"result-{os.environ['JOULE_JOB_ID']}"), "w") as f:
        f.write("\n".join(sorted(heard)) + "\n")
else:
    deadline = time.time() + 60
    while True:
        try:
            conn = socket.create_connection((addr, port), timeout=5)
            break
        except OSError:
            if time.time() > deadline:
                sys.exit(2)
            time.sleep(0.1)
    conn.sendall(f"rank {rank} of {size} on {os.environ.get('CUDA_VISIBLE_DEVICES')}\n".encode())
    conn.close()
sys.exit(int(os.environ.get("EXIT", "0")))
