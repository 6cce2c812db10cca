# Shared by the scripts here: start a server on core 0 and a loadgen run against it on core 1.
# start NAME SCENARIO "EXTRA LOADGEN ARGS" CMD... → sets $pid (server), $lg (loadgen), $ADDR;
# files go to /tmp/prof/NAME.*. finish → waits for the loadgen, stops the server by PID.
LG=/work/main/target/release/shardcast-loadgen
mkdir -p /tmp/prof && cd /tmp/prof || exit 1
start() {
  name=$1; scen=$2; extra=$3; shift 3
  taskset -c 0 "$@" > $name.srv.log 2>&1 & pid=$!
  for i in $(seq 100); do grep -q 'listening on' $name.srv.log && break; sleep 0.05; done
  ADDR=$(sed -n 's/.*listening on \([0-9.]*:[0-9]*\).*/\1/p' $name.srv.log | head -1)
  # shellcheck disable=SC2086
  taskset -c 1 "$LG" run --scenario $scen $extra --url-template "ws://$ADDR/ws/{room}/" --duration 10s \
    --warmup 2s --cpus 1 --server-pid $pid --quiet > $name.lg.log 2>&1 & lg=$!
}
finish() { wait $lg; kill $pid; wait $pid 2>/dev/null; echo "== $name $(grep -E 'server CPU' $name.lg.log)"; }
# Each server thread's voluntary/involuntary context switches and utime/stime ticks.
snap() { for t in /proc/$pid/task/*; do echo "$(cat $t/comm) $(awk '/^voluntary/{v=$2}/^nonvoluntary/{n=$2}END{print v, n}' $t/status) $(awk '{print $14, $15}' $t/stat)"; done; }
# Per-thread rates between two snaps taken $1 seconds apart.
rates() { paste $name.cs0 $name.cs1 | awk -v s=$1 '{dv=$7-$2; dn=$8-$3; du=$9-$4; ds=$10-$5; if (dv+dn+du+ds>0) print $1, "vol/s", dv/s, "invol/s", dn/s, "utime", du, "stime", ds}'; }
