#!/usr/bin/env bash
# 09_services.sh - `nk echo -l` (RFC 862 echo server) next to xinetd's internal echo, socat and
# ncat, over 127.0.0.1. One client for every server: examples/echo_load.rs (std + libc; the
# script builds it with `cargo build --release --example echo_load`, or takes LOAD=<binary>).
#
# Part 1, sequential TCP echo: for SEQ_SECS seconds, one connection after the other: connect,
#   send "ping\n", read the 5 bytes back, close (`echo_load seq`). conn/s = echoed connections /
#   wall time. RUNS rounds, each with a fresh server on a fresh port, the order rotated each
#   round; the table gives the median (min-max). Servers (stdin /dev/null):
#     nk      nk echo -l --tcp 127.0.0.1:P --rate off
#     xinetd  xinetd -dontfork -f CONF -pidfile FILE   (CONF: INTERNAL UNLISTED echo-stream,
#             wait = no, bind = 127.0.0.1, port = P, instances = UNLIMITED, cps = 100000 1)
#     socat   socat TCP-LISTEN:P,bind=127.0.0.1,fork,reuseaddr,backlog=4096 EXEC:cat
#     ncat    ncat -lk --exec /bin/cat 127.0.0.1 P
# Part 2, held connections: HELD connections to `nk echo -l --tcp` (sequential connects), then
#   each writes one line, then every echo is read back (in order), all within HELD_WAIT s of
#   the first write (`echo_load held`). While they are still open, the server's VmRSS / VmHWM
#   are read from /proc/PID/status. HELD_REF=N runs the same against xinetd with N connections
#   (xinetd forks one process per connection: memory = PSS summed over its process tree).
# Part 3, UDP round trips: one connected UDP socket, send a 64-byte datagram, wait for it to
#   come back (at most UDP_TIMEOUT s), repeat, for UDP_SECS s (`echo_load udp`), against
#     nk      nk echo -l --udp 127.0.0.1:P --rate off
#     xinetd  INTERNAL UNLISTED echo-dgram, socket_type = dgram, wait = yes
#   once with a client that sleeps in poll(2) for each reply and once with one that busy-polls
#   (--spin: the client's own wakeup leaves the round trip, the server's cost shows). Pinned
#   (UDP_PIN=1, as in 04_udp.sh): server on CPU 1, client on CPU 0. Unpinned, whether the
#   scheduler happens to put both on one CPU moves the figures 3-4x between runs.
#   RUNS rounds, fresh server and port each, order rotated. xinetd drops a datagram that arrives
#   while it is finishing the previous one (after each reply it reads and discards whatever is
#   queued), from a few per thousand to every other one, so its raw rtt/s can measure the
#   client's timeout. "net rtt/s" leaves out the time spent waiting for replies that timed out;
#   the bar uses net rtt/s for both. nk must answer every datagram (a late reply is fine).
# Part 4, bulk streams (RFC 864 chargen, RFC 863 discard), one client through OpenBSD nc:
#   chargen: `nc -d 127.0.0.1 P | head -c BULK_MIB MiB | wc -c`, timed: MB/s read; bytes
#     counted, and the first 22 lines (where xinetd's pattern and RFC 864's agree) compared
#     between the servers;
#   discard: `nc -N 127.0.0.1 P < FILE` (BULK_MIB MiB of random bytes, bulk_file), timed until
#     the server's close: MB/s sent; nc must exit 0, and nk's -v line must count every byte;
#     against
#     nk      nk chargen|discard -l --tcp 127.0.0.1:P [-v]
#     xinetd  INTERNAL UNLISTED chargen-stream / discard-stream, wait = no
#   RUNS rounds, fresh server and port each, order rotated.
# Parts 1 and 3 also give the server's CPU time per exchange (/proc/PID/stat, reaped children
# included); the header gives the CPU steal share of the run (/proc/stat).
#
# Env: RUNS=3 SEQ_SECS=3 SRCS=1 (source addresses 127.0.0.1..127.0.0.SRCS for part 1's client)
#      HELD=10000 HELD_WAIT=30 HELD_REF=1000 (0: no xinetd row in part 2)
#      UDP_SECS=2 UDP_TIMEOUT=0.002 UDP_MODES="spin sleep" UDP_PIN=1 (0: part 3 unpinned)
#      BULK_MIB=256 (part 4)  PARTS="1 2 3 4" (the parts to run)
#      TIMEOUT=60 (seconds, per process)
#      NK=<nk binary> (default <repo>/target/release/nk)  LOAD=<echo_load binary>
#      XINETD=/usr/sbin/xinetd
# Exit: 0 all runs clean; 1 a run failed (a connection failed, an echo was lost or wrong, a
#       server did not start or died, nk ignored SIGTERM, nk lost a UDP reply, `--tcp` / `--udp`
#       bound the other protocol too, the client could not be built); 2 nk missing or without
#       `echo -l` (its rows are left out). Missing a bar does not change the exit status.
#       Shown, not failed: a reference server slow to stop on SIGTERM, xinetd's lost UDP
#       replies, anything nk writes to stderr (it should write nothing without -v).
# Bars (printed): part 1 nk >= 20x socat and >= 1.0x xinetd conn/s; part 2 all HELD echoed
# within 30 s and nk RSS <= 150 MB; part 3 nk >= 1.0x xinetd rtt/s; part 4 nk >= 1.0x xinetd
# MB/s, chargen and discard.
set -uo pipefail
export LC_ALL=C

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
RUNS=${RUNS:-3}
SEQ_SECS=${SEQ_SECS:-3}
SRCS=${SRCS:-1}
HELD=${HELD:-10000}
HELD_WAIT=${HELD_WAIT:-30}
HELD_REF=${HELD_REF:-1000}
UDP_SECS=${UDP_SECS:-2}
UDP_TIMEOUT=${UDP_TIMEOUT:-0.002}
UDP_MODES=${UDP_MODES:-spin sleep}
UDP_PIN=${UDP_PIN:-1}
BULK_MIB=${BULK_MIB:-256}
PARTS=${PARTS:-1 2 3 4}
TIMEOUT=${TIMEOUT:-60}
NK=${NK:-$root/target/release/nk}
XINETD=${XINETD:-/usr/sbin/xinetd}
out_md=$here/results/09_services.md
[[ $PARTS == "1 2 3 4" ]] || out_md=$here/results/09_services.parts-${PARTS// /}.md # a partial run keeps the full one
BAR_SOCAT=20 BAR_XINETD=1.0 BAR_UDP=1.0 BAR_HELD_SECS=30 BAR_RSS_MB=150 BAR_BULK=1.0
want() { [[ " $PARTS " == *" $1 "* ]]; } # want N: part N is to run

. "$here/lib.sh" # log, free_port, free_port_udp, wait_listen, wait_bound_udp, stats, ratio, nk_lacks, need_tools, nk_rows, work_dir, term_server

for v in RUNS HELD HELD_REF SRCS BULK_MIB; do
    [[ ${!v} =~ ^[0-9]+$ ]] || { log "09_services: $v must be a whole number"; exit 1; }
done
((RUNS >= 1 && SRCS >= 1 && SRCS <= 254)) || { log "09_services: RUNS >= 1, 1 <= SRCS <= 254"; exit 1; }
need_tools 09_services ss timeout awk pgrep ps mkfifo

nk_why=$(nk_lacks echo)
if [[ -z $nk_why ]] && ! "$NK" echo --help 2>/dev/null | grep -qE '(^|[[:space:]])--listen'; then
    nk_why="no \`echo -l\`"
fi
nk_rows 09_services
declare -A MISSING=()
[[ -x $XINETD ]] || MISSING[xinetd]="not installed ($XINETD; apt-get install -y xinetd)"
command -v socat >/dev/null || MISSING[socat]="not installed"
command -v ncat >/dev/null || MISSING[ncat]="not installed"
for t in "${!MISSING[@]}"; do log "09_services: $t: ${MISSING[$t]}: its rows are skipped"; done

# ---------------------------------------------------------------- the client
if [[ -z ${LOAD:-} ]]; then
    log "09_services: cargo build --release --example echo_load"
    if ! (cd "$root" && cargo build -q --release --example echo_load) >&2; then
        log "09_services: could not build examples/echo_load.rs (set LOAD=<binary>)"; exit 1
    fi
    tdir=${CARGO_TARGET_DIR:-$root/target}
    [[ $tdir == /* ]] || tdir=$root/$tdir
    LOAD=$tdir/release/examples/echo_load
fi
[[ -x $LOAD ]] || { log "09_services: no echo_load binary at $LOAD"; exit 1; }

# Each held connection takes an fd in the client and one in the server: raise the soft limit
# (inherited by both) up to the hard one.
hard=$(ulimit -Hn)
if [[ $hard != unlimited ]] && ((hard < HELD + 64)); then
    log "09_services: the hard fd limit ($hard) is below HELD + 64 = $((HELD + 64)): part 2 would fail"
fi
if [[ $(ulimit -n) != unlimited ]] && { [[ $hard == unlimited ]] || (($(ulimit -n) < hard)); }; then
    ulimit -n "$hard" 2>/dev/null || ulimit -n $((HELD + 256)) 2>/dev/null
fi

live=() # timeout(1) pids still running (servers, the held client)
stop_live() {
    local p
    exec 7>&- 2>/dev/null
    for p in "${live[@]}"; do
        kill -TERM "$p" 2>/dev/null # timeout(1) passes it on to its process group
    done
    for p in "${live[@]}"; do wait "$p" 2>/dev/null; done
}
work_dir 09 stop_live
forget() { # pid: drop it from $live
    local p keep=()
    for p in "${live[@]}"; do [[ $p == "$1" ]] || keep+=("$p"); done
    live=("${keep[@]}")
}

# ---------------------------------------------------------------- servers
SVC=echo # the service the servers run (part 4: chargen, discard)
# xinetd_conf PROTO PORT -> path of a config with one internal $SVC service
xinetd_conf() {
    local f=$work/xinetd.$SVC.$1.$2.conf id=$SVC-stream st=stream w=no
    [[ $1 == udp ]] && id=$SVC-dgram st=dgram w=yes
    cat >"$f" <<EOF
service $SVC
{
    type        = INTERNAL UNLISTED
    id          = $id
    socket_type = $st
    protocol    = $1
    wait        = $w
    user        = root
    bind        = 127.0.0.1
    port        = $2
    instances   = UNLIMITED
    cps         = 100000 1
}
EOF
    echo "$f"
}
PFX=() # command prefix of the servers (part 3: taskset)
NK_V=() # extra nk server flags (part 4: -v for discard's byte count)
# start_server TOOL PROTO PORT -> S_TPID (timeout pid), S_PID (the server), S_ERR; 0 if ready.
start_server() {
    local tool=$1 proto=$2 port=$3 i conf=""
    S_ERR=$work/err.$SVC.$tool.$proto.$port
    [[ $tool == xinetd ]] && conf=$(xinetd_conf "$proto" "$port")
    case $tool/$proto in
    nk/tcp) exec timeout -k 5 "$TIMEOUT" "${PFX[@]}" "$NK" "$SVC" -l --tcp "127.0.0.1:$port" --rate off "${NK_V[@]}" ;;
    nk/udp) exec timeout -k 5 "$TIMEOUT" "${PFX[@]}" "$NK" "$SVC" -l --udp "127.0.0.1:$port" --rate off ;;
    xinetd/*) exec timeout -k 5 "$TIMEOUT" "${PFX[@]}" "$XINETD" -dontfork -f "$conf" -pidfile "$work/xinetd.pid" ;;
    socat/tcp) exec timeout -k 5 "$TIMEOUT" "${PFX[@]}" socat "TCP-LISTEN:$port,bind=127.0.0.1,fork,reuseaddr,backlog=4096" EXEC:cat ;;
    ncat/tcp) exec timeout -k 5 "$TIMEOUT" "${PFX[@]}" ncat -lk --exec /bin/cat 127.0.0.1 "$port" ;;
    esac </dev/null >/dev/null 2>"$S_ERR" &
    S_TPID=$! S_PID=""
    live+=("$S_TPID")
    for ((i = 0; i < 200; i++)); do
        S_PID=$(pgrep -P "$S_TPID" | head -n1)
        [[ -n $S_PID ]] && break
        kill -0 "$S_TPID" 2>/dev/null || break
        sleep 0.01
    done
    [[ -n $S_PID ]] || return 1
    if [[ $proto == udp ]]; then wait_bound_udp "$port" "$S_TPID"; else wait_listen "$port" "$S_TPID"; fi
}
# stop_server -> S_STOP: "" if it exited within 3 s of SIGTERM, else what happened.
stop_server() {
    S_STOP=""
    kill -0 "$S_PID" 2>/dev/null || S_STOP="had died before the end"
    term_server "$S_TPID" "$S_PID" || S_STOP="still running 3 s after SIGTERM: SIGKILL"
    forget "$S_TPID"
}
err_tail() { tail -c 300 "$1" 2>/dev/null | tr '\n|' ' /'; }
# kv FILE KEY -> the value of KEY= in the client's one-line report
kv() { awk -v k="$2" '{ for (i = 1; i <= NF; i++) { n = index($i, "="); if (substr($i, 1, n - 1) == k) { print substr($i, n + 1); exit } } }' "$1" 2>/dev/null; }
# port_for PROTO -> a port free for that protocol (TCP ones also free of TIME_WAIT leftovers)
port_for() { if [[ $1 == udp ]]; then free_port_udp; else free_port; fi; }

# mem_of PID -> "rss_kib hwm_kib pss_kib procs fds" summed over PID and its descendants
# (one ps for the tree, then bash builtins only: xinetd has a process per connection).
mem_of() {
    local p k v _ rss=0 hwm=0 pss=0 fds=0 n=0 f
    for p in $(ps -e -o pid=,ppid= | awk -v root="$1" '
        { kids[$2] = kids[$2] " " $1 }
        END { q[1] = root; n = 1
              for (i = 1; i <= n; i++) { print q[i]; m = split(kids[q[i]], a, " ")
                  for (j = 1; j <= m; j++) q[++n] = a[j] } }'); do
        [[ -r /proc/$p/status ]] || continue
        n=$((n + 1))
        while read -r k v _; do
            case $k in
            VmRSS:) rss=$((rss + v)) ;;
            VmHWM:) hwm=$((hwm + v)) ;;
            esac
        done <"/proc/$p/status" 2>/dev/null
        while read -r k v _; do
            [[ $k == Pss: ]] && { pss=$((pss + v)); break; }
        done <"/proc/$p/smaps_rollup" 2>/dev/null
        f=("/proc/$p/fd/"*)
        [[ -e ${f[0]} || -L ${f[0]} ]] && fds=$((fds + ${#f[@]}))
    done
    echo "$rss $hwm $pss $n $fds"
}
# cpu_of PID -> CPU ticks used so far by PID and its reaped children (utime stime cutime cstime)
cpu_of() { awk '{ sub(/^.*\) /, ""); print $12 + $13 + $14 + $15 }' "/proc/$1/stat" 2>/dev/null || echo ""; }
# cpu_us TICKS0 TICKS1 EXCHANGES -> server CPU microseconds per exchange ("" if unknown)
cpu_us() {
    [[ -n $1 && -n $2 && ${3:-0} -gt 0 ]] || return 0
    awk -v a="$1" -v b="$2" -v n="$3" -v hz="$CLK_TCK" 'BEGIN { printf "%.1f", (b - a) / hz * 1e6 / n }'
}
CLK_TCK=$(getconf CLK_TCK 2>/dev/null || echo 100)
s3() { if [[ -n ${1:-} ]]; then printf '%.3f' "$1"; else echo -; fi; }
mb() { awk -v k="$1" 'BEGIN { printf "%.1f", k * 1024 / 1e6 }'; } # KiB -> MB (10^6 bytes)

# cpu_stat -> "steal total" jiffies of all CPUs (/proc/stat): the steal share of the run says
# how much the hypervisor took away (figures from a run with high steal are not worth much).
cpu_stat() { awk '/^cpu / { t = 0; for (i = 2; i <= NF; i++) t += $i; print $9, t; exit }' /proc/stat; }
read -r steal0 total0 <<<"$(cpu_stat)"
status=0
declare -A RATES NETR OKS FAILS PROB LAT CPU RR # RR[proto/tool/round] = that round's rate

# ---------------------------------------------------------------- part 1
seq_tools=()
((have_nk)) && seq_tools+=(nk)
for t in xinetd socat ncat; do [[ -z ${MISSING[$t]:-} ]] && seq_tools+=("$t"); done
nt=${#seq_tools[@]}
want 1 || nt=0
for ((r = 0; r < RUNS && nt > 0; r++)); do
    line="09_services: tcp round $((r + 1))/$RUNS:"
    for ((k = 0; k < nt; k++)); do
        t=${seq_tools[$(((k + r) % nt))]}
        port=$(port_for tcp) || { PROB[tcp/$t]+="no free port; "; status=1; continue; }
        if ! start_server "$t" tcp "$port"; then
            PROB[tcp/$t]+="round $((r + 1)): server did not start: $(err_tail "$S_ERR"); "; status=1
            stop_server; continue
        fi
        if [[ $t == nk && -n $(ss -Huan "( sport = :$port )" 2>/dev/null) ]]; then
            PROB[tcp/$t]+="round $((r + 1)): --tcp, yet a UDP socket is bound on the port; "; status=1
        fi
        o=$work/seq.$t.$r
        c0=$(cpu_of "$S_PID")
        timeout -k 5 "$TIMEOUT" "$LOAD" seq "127.0.0.1:$port" --secs "$SEQ_SECS" --srcs "$SRCS" >"$o" 2>"$o.err"
        rc=$?
        c1=$(cpu_of "$S_PID")
        stop_server
        ok=$(kv "$o" ok) fail=$(kv "$o" fail) rate=$(kv "$o" rate)
        if [[ -z $ok ]]; then
            PROB[tcp/$t]+="round $((r + 1)): client exit $rc, no report: $(err_tail "$o.err"); "; status=1
            line+=" $t=FAIL"; continue
        fi
        if ((rc != 0 || fail != 0)); then
            PROB[tcp/$t]+="round $((r + 1)): $fail failed connections (first: $(kv "$o" err)); "; status=1
        fi
        if [[ -n $S_STOP ]]; then
            PROB[tcp/$t]+="round $((r + 1)): server $S_STOP; "; [[ $t == nk ]] && status=1
        fi
        [[ $t == nk && -s $S_ERR ]] && PROB[tcp/$t]+="round $((r + 1)): stderr: $(err_tail "$S_ERR"); "
        RATES[tcp/$t]+="$rate " RR[tcp/$t/$r]=$rate OKS[tcp/$t]=$((${OKS[tcp/$t]:-0} + ok)) FAILS[tcp/$t]=$((${FAILS[tcp/$t]:-0} + fail))
        LAT[tcp/$t]+="$(kv "$o" p50_ms)/$(kv "$o" p99_ms) "
        CPU[tcp/$t]+="$(cpu_us "$c0" "$c1" "$ok") "
        line+=" $t=${rate}"
    done
    log "$line"
done

# ---------------------------------------------------------------- part 2
# held_run TOOL COUNT -> H_* figures; one line of problems in H_PROB ("" = clean)
held_run() {
    local t=$1 n=$2 port o=$work/held.$1 i ctp rc idle
    H_OPEN="" H_ECHO="" H_OK="" H_N=$n H_MEM="" H_IDLE="" H_PROB=""
    port=$(port_for tcp) || { H_PROB="no free port"; return; }
    if ! start_server "$t" tcp "$port"; then
        H_PROB="server did not start: $(err_tail "$S_ERR")"; stop_server; return
    fi
    H_IDLE=$(mem_of "$S_PID")
    rm -f "$work/fifo"; mkfifo "$work/fifo"
    timeout -k 5 "$TIMEOUT" "$LOAD" held "127.0.0.1:$port" --conns "$n" --timeout "$HELD_WAIT" \
        --hold-max $((TIMEOUT - 5)) <"$work/fifo" >"$o" 2>"$o.err" &
    ctp=$!
    live+=("$ctp")
    exec 7>"$work/fifo" # the client holds its connections until this is closed
    for ((i = 0; i < TIMEOUT * 20; i++)); do
        [[ -s $o ]] && break
        kill -0 "$ctp" 2>/dev/null || break
        sleep 0.05
    done
    [[ -s $o ]] && H_MEM=$(mem_of "$S_PID") # read while every connection is still open
    exec 7>&-
    wait "$ctp"; rc=$?
    forget "$ctp"
    # A forking server (xinetd) is still reaping its per-connection processes: let it finish
    # (bounded, 10 s) before SIGTERM, so that the stop check times the stop alone.
    for ((i = 0; i < 200; i++)); do
        [[ -z $(pgrep -P "$S_PID" | head -n1) ]] && break
        sleep 0.05
    done
    stop_server
    H_OK=$(kv "$o" echoed) H_OPEN=$(kv "$o" open_secs) H_ECHO=$(kv "$o" echo_secs)
    if [[ -z $H_OK ]]; then
        H_PROB="client exit $rc, no report: $(err_tail "$o.err")"
    elif ((rc != 0 || H_OK != n)); then
        H_PROB="$(kv "$o" opened) opened, $H_OK echoed (first error: $(kv "$o" err))"
    fi
    [[ -n $S_STOP ]] && H_PROB+="${H_PROB:+; }server $S_STOP"
    [[ $t == nk && -s $S_ERR ]] && H_PROB+="${H_PROB:+; }stderr: $(err_tail "$S_ERR")"
}
declare -A HELD_ROW=()
held_row() { # TOOL -> the table row from the H_* figures
    local rss hwm pss procs fds irss ihwm ipss bar="" mem idle
    read -r irss ihwm ipss _ _ <<<"${H_IDLE:-0 0 0 0 0}"
    read -r rss hwm pss procs fds <<<"${H_MEM:-0 0 0 0 0}"
    if [[ -n $H_MEM ]]; then
        mem="$(mb "$rss") / $(mb "$hwm") / $(mb "$pss")"
    else
        mem="not read"
    fi
    idle="$(mb "$irss") / $(mb "$ipss")"
    local echo_cell="${H_OK:-0}/$H_N in $(s3 "$H_ECHO") s (open $(s3 "$H_OPEN") s)"
    if [[ $1 == nk ]]; then
        local e_ok=FAIL m_ok=FAIL
        [[ -n $H_ECHO && ${H_OK:-0} == "$H_N" ]] &&
            awk -v s="$H_ECHO" -v b="$BAR_HELD_SECS" 'BEGIN { exit !(s <= b) }' && e_ok=PASS
        [[ -n $H_MEM ]] && awk -v k="$hwm" -v b="$BAR_RSS_MB" 'BEGIN { exit !(k * 1024 / 1e6 <= b) }' && m_ok=PASS
        bar="echo <= ${BAR_HELD_SECS} s: $e_ok; RSS $(mb "$hwm") MB (bar <= $BAR_RSS_MB MB): $m_ok"
    fi
    echo "| $(label "$1") | $echo_cell | $idle | $mem | $procs / $fds | $bar | ${H_PROB:-ok} |"
}
label() {
    case $1 in
    nk) echo "nk echo -l" ;;
    xinetd) echo "xinetd internal echo" ;;
    socat) echo "socat fork EXEC:cat" ;;
    ncat) echo "ncat -lk --exec /bin/cat" ;;
    esac
}
if want 2 && ((have_nk)); then
    log "09_services: held: $HELD connections to nk (fd limit $(ulimit -n))"
    held_run nk "$HELD"
    [[ -n $H_PROB ]] && status=1
    HELD_ROW[nk]=$(held_row nk)
    log "09_services: held nk: ${H_OK:-0}/$HELD echoed in ${H_ECHO:--} s (open ${H_OPEN:--} s), mem ${H_MEM:-not read}${H_PROB:+; $H_PROB}"
fi
if want 2 && ((HELD_REF > 0)) && [[ -z ${MISSING[xinetd]:-} ]]; then
    log "09_services: held: $HELD_REF connections to xinetd"
    held_run xinetd "$HELD_REF"
    [[ -n $H_PROB && $H_PROB != "server "* ]] && status=1
    HELD_ROW[xinetd]=$(held_row xinetd)
    log "09_services: held xinetd: ${H_OK:-0}/$HELD_REF echoed in ${H_ECHO:--} s, mem ${H_MEM:-not read}${H_PROB:+; $H_PROB}"
fi

# ---------------------------------------------------------------- part 3
# Keys: udp-MODE/TOOL, MODE = sleep (the client sleeps in poll(2) for each reply) or spin (it
# busy-polls, so that only the server's wakeup and work are in the round trip).
udp_runs=() # "MODE TOOL" pairs
for m in $UDP_MODES; do
    [[ $m == sleep || $m == spin ]] || { log "09_services: UDP_MODES: unknown mode $m"; exit 1; }
    ((have_nk)) && udp_runs+=("$m nk")
    [[ -z ${MISSING[xinetd]:-} ]] && udp_runs+=("$m xinetd")
done
declare -A LOST=() NEVER=()
CPFX=() pin_note="unpinned"
if [[ $UDP_PIN == 1 ]] && (($(nproc) >= 2)) && command -v taskset >/dev/null; then
    PFX=(taskset -c 1) CPFX=(taskset -c 0) pin_note="server on CPU 1, client on CPU 0 (taskset)"
fi
nt=${#udp_runs[@]}
want 3 || nt=0
for ((r = 0; r < RUNS && nt > 0; r++)); do
    line="09_services: udp round $((r + 1))/$RUNS:"
    for ((k = 0; k < nt; k++)); do
        read -r m t <<<"${udp_runs[$(((k + r) % nt))]}"
        key=udp-$m/$t spin=()
        [[ $m == spin ]] && spin=(--spin)
        port=$(port_for udp) || { PROB[$key]+="no free port; "; status=1; continue; }
        if ! start_server "$t" udp "$port"; then
            PROB[$key]+="round $((r + 1)): server did not start: $(err_tail "$S_ERR"); "; status=1
            stop_server; continue
        fi
        if [[ $t == nk && -n $(ss -Hltn "( sport = :$port )" 2>/dev/null) ]]; then
            PROB[$key]+="round $((r + 1)): --udp, yet a TCP listener is on the port; "; status=1
        fi
        o=$work/udp.$m.$t.$r
        c0=$(cpu_of "$S_PID")
        timeout -k 5 "$TIMEOUT" "${CPFX[@]}" "$LOAD" udp "127.0.0.1:$port" --secs "$UDP_SECS" --timeout "$UDP_TIMEOUT" "${spin[@]}" >"$o" 2>"$o.err"
        rc=$?
        c1=$(cpu_of "$S_PID")
        stop_server
        ok=$(kv "$o" ok) lost=$(kv "$o" lost) never=$(kv "$o" never)
        if [[ -z $ok || $ok == 0 ]]; then
            PROB[$key]+="round $((r + 1)): client exit $rc, ${ok:-no} replies: $(kv "$o" err) $(err_tail "$o.err"); "; status=1
            line+=" $m/$t=FAIL"; continue
        fi
        if ((never > 0)) && [[ $t == nk ]]; then
            PROB[$key]+="round $((r + 1)): $never datagrams never answered (first: $(kv "$o" err)); "; status=1
        fi
        if [[ -n $S_STOP ]]; then
            PROB[$key]+="round $((r + 1)): server $S_STOP; "; [[ $t == nk ]] && status=1
        fi
        [[ $t == nk && -s $S_ERR ]] && PROB[$key]+="round $((r + 1)): stderr: $(err_tail "$S_ERR"); "
        RATES[$key]+="$(kv "$o" rate) " NETR[$key]+="$(kv "$o" net_rate) " RR[$key/$r]=$(kv "$o" net_rate)
        OKS[$key]=$((${OKS[$key]:-0} + ok)) LOST[$key]=$((${LOST[$key]:-0} + lost))
        NEVER[$key]=$((${NEVER[$key]:-0} + never))
        LAT[$key]+="$(kv "$o" p50_ms)/$(kv "$o" p99_ms) "
        CPU[$key]+="$(cpu_us "$c0" "$c1" "$ok") "
        line+=" $m/$t=$(kv "$o" rate) (net $(kv "$o" net_rate), timed out $lost, never answered $never)"
    done
    log "$line"
done

# ---------------------------------------------------------------- part 4
PFX=() CPFX=()
bulk_bytes=$((BULK_MIB * 1024 * 1024))
bulk_tools=()
if want 4; then
    if ((have_nk)) && [[ -z $(nk_lacks chargen) && -z $(nk_lacks discard) ]]; then
        bulk_tools+=(nk)
    elif ((have_nk)); then
        PROB[chargen/nk]="no \`chargen\`/\`discard\` command; " PROB[discard/nk]=${PROB[chargen/nk]}
    fi
    [[ -z ${MISSING[xinetd]:-} ]] && bulk_tools+=(xinetd)
    command -v nc >/dev/null || { log "09_services: part 4 needs nc (netcat-openbsd)"; bulk_tools=(); }
    ((${#bulk_tools[@]})) && bulk_in=$(bulk_file "$BULK_MIB")
fi
nt=${#bulk_tools[@]}
for ((r = 0; r < RUNS && nt > 0; r++)); do
    for SVC in chargen discard; do
        line="09_services: $SVC round $((r + 1))/$RUNS:"
        for ((k = 0; k < nt; k++)); do
            t=${bulk_tools[$(((k + r) % nt))]} key=$SVC/${bulk_tools[$(((k + r) % nt))]}
            NK_V=()
            [[ $SVC == discard ]] && NK_V=(-v)
            port=$(port_for tcp) || { PROB[$key]+="no free port; "; status=1; continue; }
            if ! start_server "$t" tcp "$port"; then
                PROB[$key]+="round $((r + 1)): server did not start: $(err_tail "$S_ERR"); "; status=1
                stop_server; continue
            fi
            o=$work/bulk.$SVC.$t.$r
            if [[ $SVC == chargen ]]; then
                # The first lines, for the comparison between the servers (not timed).
                timeout -k 5 "$TIMEOUT" nc -d 127.0.0.1 "$port" 2>/dev/null | head -c $((22 * 74)) >"$work/first.$t"
                t0=$EPOCHREALTIME
                got=$(timeout -k 5 "$TIMEOUT" nc -d 127.0.0.1 "$port" 2>"$o.err" | head -c "$bulk_bytes" | wc -c)
                t1=$EPOCHREALTIME
                [[ $got == "$bulk_bytes" ]] || { PROB[$key]+="round $((r + 1)): read $got of $bulk_bytes bytes: $(err_tail "$o.err"); "; status=1; }
            else
                t0=$EPOCHREALTIME
                timeout -k 5 "$TIMEOUT" nc -N 127.0.0.1 "$port" <"$bulk_in" >"$o" 2>"$o.err"
                rc=$?
                t1=$EPOCHREALTIME
                got=$bulk_bytes
                ((rc == 0)) || { PROB[$key]+="round $((r + 1)): nc exit $rc: $(err_tail "$o.err"); "; status=1; got=0; }
                if [[ $t == nk ]]; then
                    for ((i = 0; i < 200; i++)); do grep -q ' closed (#1)' "$S_ERR" && break; sleep 0.01; done
                    grep -q " closed (#1): $bulk_bytes bytes in" "$S_ERR" ||
                        { PROB[$key]+="round $((r + 1)): nk did not count $bulk_bytes bytes: $(err_tail "$S_ERR"); "; status=1; }
                fi
            fi
            stop_server
            if [[ -n $S_STOP ]]; then
                PROB[$key]+="round $((r + 1)): server $S_STOP; "; [[ $t == nk ]] && status=1
            fi
            rate=$(awk -v b="$got" -v s="$(elapsed "$t0" "$t1")" 'BEGIN { if (s > 0 && b > 0) printf "%.0f", b / s / 1e6 }')
            [[ -n $rate ]] && RATES[$key]+="$rate " RR[$SVC/$t/$r]=$rate
            line+=" $t=${rate:-FAIL} MB/s"
        done
        log "$line"
    done
done
SVC=echo
first_same="-"
if [[ -s $work/first.nk && -s $work/first.xinetd ]]; then
    if cmp -s "$work/first.nk" "$work/first.xinetd"; then first_same="identical"; else first_same="DIFFERENT"; status=1; fi
fi

# ---------------------------------------------------------------- tables
med() { read -r m _ _ <<<"$(stats "${1:-}" "${2:-%.0f}")"; echo "$m"; }
lat_med() { # "p50/p99 p50/p99 .." -> "median p50 / median p99"
    local a="" b="" x
    for x in ${1:-}; do a+="${x%/*} " b+="${x#*/} "; done
    [[ -z $a ]] && { echo "- / -"; return; }
    echo "$(med "$a" %.3f) / $(med "$b" %.3f)"
}
cmd_tcp() {
    case $1 in
    nk) echo "\`nk echo -l --tcp 127.0.0.1:P --rate off\`" ;;
    xinetd) echo "\`xinetd -dontfork -f CONF -pidfile FILE\` (echo-stream)" ;;
    socat) echo "\`socat TCP-LISTEN:P,bind=127.0.0.1,fork,reuseaddr,backlog=4096 EXEC:cat\`" ;;
    ncat) echo "\`ncat -lk --exec /bin/cat 127.0.0.1 P\`" ;;
    esac
}
clean() { [[ -z ${PROB[$1]:-} ]]; }
# round_ratio PROTO A B -> "; per round median (min-max)" of A/B over the rounds both ran
round_ratio() {
    local r v="" m lo hi
    for ((r = 0; r < RUNS; r++)); do
        [[ -n ${RR[$1/$2/$r]:-} && -n ${RR[$1/$3/$r]:-} ]] || continue
        v+="$(awk -v a="${RR[$1/$2/$r]}" -v b="${RR[$1/$3/$r]}" 'BEGIN { if (b > 0) printf "%.2f", a / b }') "
    done
    read -r m lo hi <<<"$(stats "$v" %.2f)"
    [[ $m == - ]] || echo "; per round ${m}x ($lo-$hi)"
}
nk_tcp=$(med "${RATES[tcp/nk]:-}") xi_tcp=$(med "${RATES[tcp/xinetd]:-}") so_tcp=$(med "${RATES[tcp/socat]:-}")
r_socat="-" r_xinetd="-"
if ((have_nk)); then
    if clean tcp/nk; then
        clean tcp/socat && r_socat="$(ratio "$nk_tcp" "$so_tcp" "$BAR_SOCAT")$(round_ratio tcp nk socat)"
        clean tcp/xinetd && r_xinetd="$(ratio "$nk_tcp" "$xi_tcp" "$BAR_XINETD")$(round_ratio tcp nk xinetd)"
    else
        r_socat=INVALID r_xinetd=INVALID
    fi
fi
tcp_table=$(
    echo "| server | command | conn/s median (min-max) | p50 / p99 ms | server CPU us / conn | connections | nk/socat | nk/xinetd | problems |"
    echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"
    for t in nk xinetd socat ncat; do
        if [[ $t == nk ]] && ((!have_nk)); then
            echo "| nk echo -l | $(cmd_tcp nk) | $nk_why | | | | | | |"; continue
        fi
        if [[ -n ${MISSING[$t]:-} ]]; then
            echo "| $(label "$t") | $(cmd_tcp "$t") | ${MISSING[$t]} | | | | | | |"; continue
        fi
        a="" b=""
        [[ $t == nk ]] && a=$r_socat b=$r_xinetd
        p=${PROB[tcp/$t]:-ok}
        echo "| $(label "$t") | $(cmd_tcp "$t") | $(fmt_range "${RATES[tcp/$t]:-}") | $(lat_med "${LAT[tcp/$t]:-}") | $(med "${CPU[tcp/$t]:-}" %.1f) | ${OKS[tcp/$t]:-0} | $a | $b | ${p%; } |"
    done
)
held_table=$(
    echo "| server | echoed (echo phase; opening) | idle RSS / PSS MB | held RSS / HWM / PSS MB | procs / fds | bar | problems |"
    echo "| --- | --- | --- | --- | --- | --- | --- |"
    if ((have_nk)); then echo "${HELD_ROW[nk]:-}"; else echo "| nk echo -l | $nk_why | | | | | |"; fi
    [[ -n ${HELD_ROW[xinetd]:-} ]] && echo "${HELD_ROW[xinetd]}"
)
declare -A R_UDP=() R_RAW=()
for m in $UDP_MODES; do
    R_UDP[$m]="-" R_RAW[$m]="-"
    ((have_nk)) || continue
    if ! clean "udp-$m/nk"; then
        R_UDP[$m]=INVALID R_RAW[$m]=INVALID
    elif [[ -n ${NETR[udp-$m/xinetd]:-} ]] && clean "udp-$m/xinetd"; then
        R_UDP[$m]="$(ratio "$(med "${NETR[udp-$m/nk]}")" "$(med "${NETR[udp-$m/xinetd]}")" "$BAR_UDP")$(round_ratio "udp-$m" nk xinetd)"
        R_RAW[$m]=$(ratio "$(med "${RATES[udp-$m/nk]}")" "$(med "${RATES[udp-$m/xinetd]}")")
    fi
done
udp_row() { # MODE TOOL
    local k=udp-$1/$2 a="" b="" p
    p=${PROB[$k]:-ok}
    [[ $2 == nk ]] && a=${R_UDP[$1]} b=${R_RAW[$1]}
    echo "| $(label "$2") | $1 | $(fmt_range "${NETR[$k]:-}") | $(fmt_range "${RATES[$k]:-}") | ${OKS[$k]:-0} / ${LOST[$k]:-0} / ${NEVER[$k]:-0} | $(lat_med "${LAT[$k]:-}") | $(med "${CPU[$k]:-}" %.1f) | $a | $b | ${p%; } |"
}
udp_table=$(
    echo "| server | client | net rtt/s median (min-max) | raw rtt/s median (min-max) | replies / timed out / never answered | p50 / p99 ms | server CPU us / reply | nk/xinetd net (bar) | nk/xinetd raw | problems |"
    echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
    for m in $UDP_MODES; do
        if ((have_nk)); then udp_row "$m" nk; else echo "| nk echo -l | $m | $nk_why | | | | | | | |"; fi
        if [[ -n ${MISSING[xinetd]:-} ]]; then
            echo "| xinetd internal echo | $m | ${MISSING[xinetd]} | | | | | | | |"
        else
            udp_row "$m" xinetd
        fi
    done
)

bulk_table=$(
    echo "| service | server | MB/s median (min-max) | nk/xinetd (bar) | problems |"
    echo "| --- | --- | --- | --- | --- |"
    for v in chargen discard; do
        r_b="-"
        if [[ -n ${RATES[$v/nk]:-} && -n ${RATES[$v/xinetd]:-} ]]; then
            if clean "$v/nk"; then
                r_b="$(ratio "$(med "${RATES[$v/nk]}")" "$(med "${RATES[$v/xinetd]}")" "$BAR_BULK")$(round_ratio "$v" nk xinetd)"
            else
                r_b=INVALID
            fi
        fi
        for t in nk xinetd; do
            a=""
            [[ $t == nk ]] && a=$r_b
            p=${PROB[$v/$t]:-ok}
            echo "| $v | $([[ $t == nk ]] && echo "\`nk $v -l --tcp\`" || echo "xinetd internal $v-stream") | $(fmt_range "${RATES[$v/$t]:-}") | $a | ${p%; } |"
        done
    done
)

read -r steal1 total1 <<<"$(cpu_stat)"
steal_pct=$(awk -v a="$steal0" -v b="$steal1" -v c="$total0" -v d="$total1" 'BEGIN { printf "%.1f", (d > c) ? (b - a) * 100 / (d - c) : 0 }')
log "09_services: CPU steal during the run: $steal_pct %"
{
    echo "# 09_services: \`nk echo -l\` (and chargen, discard) vs xinetd, socat, ncat over 127.0.0.1"
    echo
    echo "$(date -u '+%Y-%m-%d %H:%M UTC'), $(uname -r), $(nproc) CPUs, load $(cut -d' ' -f1 /proc/loadavg), CPU steal during the run ${steal_pct} %; nk: $NK$( ((have_nk)) || echo " ($nk_why)"); xinetd $("$XINETD" -version 2>&1 | grep -o '[0-9][0-9.]*' | head -1); $(socat -V 2>/dev/null | awk '/socat version/ { print "socat " $3 }'); $(ncat --version 2>&1 | awk '/Ncat: Version/ { print "ncat " $3 }'); git $(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo none)"
    echo
    if want 1; then
    echo "## Sequential connect + \"ping\\n\" + echo + close: $RUNS rounds x ${SEQ_SECS} s per server"
    echo
    echo "$tcp_table"
    echo
    echo "Client: \`echo_load seq 127.0.0.1:P --secs $SEQ_SECS --srcs $SRCS\` (examples/echo_load.rs): one connection after the other,"
    echo "connect, write \`ping\\n\`, read the 5 bytes back and compare, close. conn/s = echoed connections / wall"
    echo "time of the round; median of $RUNS rounds (fresh server and port each round, order rotated);"
    echo "p50 / p99 = medians of the rounds' per-connection percentiles (connect to close). server CPU"
    echo "us / conn = the server's user+system CPU time during the round (with its reaped children:"
    echo "/proc/PID/stat utime+stime+cutime+cstime, 1/$CLK_TCK s ticks) / echoed connections, median of rounds."
    echo "xinetd CONF: \`service echo { type = INTERNAL UNLISTED; id = echo-stream; socket_type = stream;"
    echo "protocol = tcp; wait = no; user = root; bind = 127.0.0.1; port = P; instances = UNLIMITED; cps = 100000 1 }\`."
    echo "Bars: nk >= ${BAR_SOCAT}x socat and >= ${BAR_XINETD}x xinetd conn/s (medians; \"per round\" = the same"
    echo "ratio within each round, where both ran back to back)."
    fi
    echo
    if want 2; then
    echo "## $HELD held connections"
    echo
    echo "$held_table"
    echo
    echo "Client: \`echo_load held 127.0.0.1:P --conns N --timeout $HELD_WAIT\`: N sequential connects, then every"
    echo "connection writes one line (\`held NNNNN\\n\`), then every echo is read back, in order; the echo"
    echo "phase is timed from the first write to the last echo. Memory is read while all N are still"
    echo "open: VmRSS / VmHWM from /proc/PID/status, PSS from /proc/PID/smaps_rollup, summed over the"
    echo "server's process tree (xinetd forks one process per connection, so its summed RSS counts"
    echo "shared pages once per process: read PSS for it); MB = 10^6 bytes. Server"
    echo "\`nk echo -l --tcp 127.0.0.1:P --rate off\`, fd limit $(ulimit -n) (\`ulimit -n\`, raised to the hard limit)."
    echo "Bars: all $HELD echoed within ${BAR_HELD_SECS} s, nk VmHWM <= $BAR_RSS_MB MB."
    fi
    echo
    if want 3; then
    echo "## UDP round trips: $RUNS rounds x ${UDP_SECS} s per server, one client"
    echo
    echo "$udp_table"
    echo
    echo "Servers: \`nk echo -l --udp 127.0.0.1:P --rate off\`; xinetd as above with id = echo-dgram,"
    echo "socket_type = dgram, protocol = udp, wait = yes (xinetd answers internal dgram echo itself)."
    echo "Client: \`echo_load udp 127.0.0.1:P --secs $UDP_SECS --timeout $UDP_TIMEOUT [--spin]\`: one connected UDP socket, a"
    echo "64-byte datagram with a sequence number, wait at most ${UDP_TIMEOUT} s for the same bytes back, else count it"
    echo "as timed out and send the next; repeat. client \"sleep\": it waits in poll(2); \"spin\": it busy-polls"
    echo "(recv MSG_PEEK|MSG_DONTWAIT), so its own wakeup is not in the round trip and what is left is"
    echo "the server's wakeup and its work per datagram. nk's service loop busy-polls briefly before it"
    echo "sleeps, xinetd sleeps in poll(2) at once: with a sleeping client much of the gap is that"
    echo "wakeup (the server CPU column shows what the polling costs)."
    echo "A timed-out reply that turns up later is not \"never answered\". raw rtt/s = replies / wall time;"
    echo "net rtt/s = replies / (wall time - time spent waiting for replies that timed out)."
    echo "server CPU us / reply: as in the first table, per reply."
    echo "xinetd drops datagrams: after each reply it reads and discards whatever is queued on its"
    echo "socket, and the client's next datagram may already be there (between a few per thousand and"
    echo "every other one, depending on where the scheduler puts the two). Its raw figure then mostly"
    echo "says how long the client waits before giving up; the net figure is what it does when it"
    echo "answers, and is the one the bar uses, for both servers."
    echo "CPUs: $pin_note. Unpinned, whether the scheduler puts"
    echo "client and server on one CPU (fast hand-off) or two moves the figures 3-4x from run to run;"
    echo "a spinning client sharing a CPU with the server also delays it by whole time slices."
    echo "Bar: nk >= ${BAR_UDP}x xinetd net rtt/s (medians), shown for each client mode."
    fi
    echo
    if want 4; then
    echo "## Bulk streams: chargen read, discard written, $BULK_MIB MiB through OpenBSD nc, $RUNS rounds"
    echo
    echo "$bulk_table"
    echo
    echo "chargen: \`nc -d 127.0.0.1 P | head -c $bulk_bytes | wc -c\`, timed from start to end; MB/s ="
    echo "bytes / wall time (10^6 bytes); the byte count is checked. First 22 lines (1628 bytes) of the"
    echo "two servers' streams: $first_same (xinetd's ring leaves out the space and ~, so later"
    echo "lines differ from RFC 864's by design). discard: \`nc -N 127.0.0.1 P < FILE\` ($BULK_MIB MiB"
    echo "of random bytes, page-cached), timed until nc exits, which is after the server's close;"
    echo "nc must exit 0, and nk's -v close line must count every byte. The client and the server"
    echo "share the machine's CPUs: the figures are the pair's, the ratio compares the servers."
    echo "Bar: nk >= ${BAR_BULK}x xinetd MB/s (medians), for each service."
    fi
} >"$work/out.md"
finish "$out_md"
