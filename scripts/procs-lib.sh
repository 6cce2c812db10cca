# Sourced by the measuring scripts (compare-uws.sh, compare-channels.sh, cluster-bench.sh):
# the processes a script starts, stopped by PID — never by name — and a free loopback port.
#
#   PIDS+=("$!")         after starting a process in the background
#   stop_all             TERM then wait for every one of them; PIDS is empty afterwards
#   port="$(free_port)"  a port the kernel just handed out on 127.0.0.1

PIDS=()

stop_all() {
  for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  PIDS=()
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
