#!/usr/bin/env bash
# 10_head.sh - one HEAD request per process: `nk head` vs `curl -sI`, N sequential processes
# each, against the same nginx on 127.0.0.1 serving a small static index.html (the issue's
# "1,000 sequential processes").
#
#   nk    nk head http://127.0.0.1:P/
#   curl  curl -sI http://127.0.0.1:P/
#   true  /bin/true (reference: what one fork+exec from the same bash loop costs)
#
# nginx (Debian nginx-light or nginx) runs in the foreground as one process (`master_process
# off`, `daemon off`) on 127.0.0.1:P (a free port below the ephemeral range), with a config
# the script writes into a temp dir (pid, logs and temp paths inside it, access_log off,
# keepalive_timeout 65). Each tool sends its own default request: nk's says `Connection:
# close` (nginx closes after the head), curl's keeps the connection alive (curl closes it on
# exit once it has the head). The processes are started by a plain bash loop (`for ...; do
# cmd; done`, stdout to a file, no per-process timeout(1) wrapper: it would add a fork+exec to
# every request), timed with $EPOCHREALTIME around the loop. The N processes of each tool are
# split into RUNS rounds; every round runs one batch per tool, the order alternating, so noise
# hits all alike.
# Correctness: one untimed request per tool first must print a `HTTP/1.1 200 OK` head with the
# file's Content-Length and nothing after the blank line, and nk's head must equal curl's
# except the Date value and the Connection header; after every batch, every process must
# have exited 0 and the batch's output must hold exactly one such head per process.
#
# Env: N=1000 (processes per tool) RUNS=5 (rounds) TIMEOUT=120 (seconds, per batch)
#      NK=<nk binary> (default <repo>/target/release/nk)  CURL=curl  NGINX=nginx
#      FLOOR=1 (0: no /bin/true row)
# Exit: 0 all runs clean (also when curl or nginx is missing: the script is skipped);
#       1 a request failed, printed a wrong head, a batch timed out, or nginx died;
#       2 nk missing or its --help lists no `head` command (curl rows only).
# Bar (printed, not enforced): nk time / curl time <= 0.8 (total over all rounds).
set -uo pipefail
export LC_ALL=C

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
N=${N:-1000}
RUNS=${RUNS:-5}
TIMEOUT=${TIMEOUT:-120}
NK=${NK:-$root/target/release/nk}
CURL=${CURL:-curl}
NGINX=${NGINX:-nginx}
FLOOR=${FLOOR:-1}
BAR=0.8
out_md=$here/results/10_head.md

. "$here/lib.sh" # log, free_port, wait_listen, stats, nk_lacks, need_tools, nk_rows, work_dir

[[ $N =~ ^[1-9][0-9]*$ && $RUNS =~ ^[1-9][0-9]*$ ]] && ((RUNS <= N)) ||
    { log "10_head: N and RUNS must be positive integers, RUNS <= N"; exit 1; }

# The reference tools: skip (exit 0) when absent; nothing is installed from here.
if ! command -v "$CURL" >/dev/null; then
    log "10_head: skipped: $CURL not found (apt-get install -y curl)"; exit 0
fi
if ! NGINX=$(command -v "$NGINX" || command -v /usr/sbin/nginx); then
    log "10_head: skipped: nginx not found (apt-get install -y nginx-light)"; exit 0
fi
need_tools 10_head ss timeout awk

nk_why=$(nk_lacks head)
nk_rows 10_head

ng_pid="" # timeout(1) wrapping nginx; TERM to it is passed on to nginx
stop_nginx() { stop_pidvar ng_pid; }
work_dir 10 stop_nginx

# ---------------------------------------------------------------- nginx
mkdir -p "$work/www"
cat >"$work/www/index.html" <<'EOF'
<!doctype html>
<html><head><title>nk bench</title></head>
<body><p>A small static page for 10_head.sh.</p></body></html>
EOF
size=$(stat -c %s "$work/www/index.html")

# Lives at most as long as the whole run can take (a safety net if this script is killed).
life=$(((2 * RUNS + 4) * TIMEOUT + 60))
port=""
for ((try = 0; try < 5; try++)); do
    p=$(free_port) || break
    cat >"$work/nginx.conf" <<EOF
master_process off;
worker_processes 1;
error_log $work/error.log;
pid $work/nginx.pid;
events { worker_connections 256; }
http {
    access_log off;
    client_body_temp_path $work/client_body;
    proxy_temp_path $work/proxy;
    fastcgi_temp_path $work/fastcgi;
    uwsgi_temp_path $work/uwsgi;
    scgi_temp_path $work/scgi;
    keepalive_timeout 65;
    default_type text/html;
    server {
        listen 127.0.0.1:$p;
        root $work/www;
        index index.html;
    }
}
EOF
    timeout -k 5 "$life" "$NGINX" -e "$work/error.log" -c "$work/nginx.conf" -p "$work" \
        -g 'daemon off;' </dev/null >/dev/null 2>"$work/nginx.err" &
    ng_pid=$!
    if wait_listen "$p" "$ng_pid"; then port=$p; break; fi
    log "10_head: nginx did not start on port $p: $(tail -c 300 "$work/nginx.err" "$work/error.log" 2>/dev/null | tr '\n' ' ')"
    stop_nginx
done
[[ -n $port ]] || { log "10_head: could not start nginx"; exit 1; }
URL=http://127.0.0.1:$port/
ng_ver=$("$NGINX" -v 2>&1 | sed 's/.*nginx\///')
log "10_head: nginx $ng_ver serving $URL ($size-byte index.html)"

# ---------------------------------------------------------------- commands
# cmd_of TOOL -> sets the array CMD
cmd_of() {
    case $1 in
    nk) CMD=("$NK" head "$URL") ;;
    curl) CMD=("$CURL" -sI "$URL") ;;
    true) CMD=(/bin/true) ;;
    esac
}
shown() { cmd_of "$1"; local s="${CMD[*]}"; s=${s/#$NK/nk}; s=${s/#$CURL/curl}; echo "${s//:$port\//:P/}"; }

# check_out TOOL FILE COUNT -> "" when FILE holds exactly COUNT heads `HTTP/1.1 200 OK` with
# Content-Length: $size, every line CRLF-terminated, nothing outside the heads; else why not.
check_out() {
    [[ $1 == true ]] && { [[ -s $2 ]] && echo "unexpected output"; return; }
    awk -v want="$3" -v size="$size" '
        { if (substr($0, length($0)) != "\r") { bad++; if (!ex) ex = "a line without CR: " $0; next }
          l = substr($0, 1, length($0) - 1) }
        !inhead { if (l == "HTTP/1.1 200 OK") { inhead = 1; heads++ } else { bad++; if (!ex) ex = l }; next }
        l == "" { inhead = 0; ends++; next }
        tolower(l) ~ /^content-length: / { if (l ~ (": " size "$")) cl++; else { bad++; if (!ex) ex = l } ; next }
        l !~ /^[!#$%&'"'"'*+.^_`|~0-9A-Za-z-]+: / { bad++; if (!ex) ex = l }
        END {
            if (inhead) { bad++; if (!ex) ex = "an unterminated head" }
            if (heads != want || ends != want || cl != want || bad)
                printf "%d of %d heads (%d ended, %d with Content-Length: %d), %d bad lines%s\n", heads + 0, want, ends + 0, cl + 0, size, bad + 0, (ex != "" ? " (e.g. \"" ex "\")" : "")
        }' "$2"
}

# mask FILE -> the head with the Date value masked and the Connection line dropped
mask() { sed -e 's/^\(Date: \).*/\1<masked>\r/' -e '/^Connection: /d' "$1"; }

# ---------------------------------------------------------------- verification
tools=(curl)
((have_nk)) && tools=(nk curl)
((FLOOR)) && tools+=(true)
declare -A VERIFY SECS CNT ROUND_MS FAILS
status=0
for t in "${tools[@]}"; do
    proc_verify "$t" "$work/v.$t"
    [[ $t == true ]] || log "10_head: verify $t: ${VERIFY[$t]}; head: $(tr -d '\r' <"$work/v.$t" | tr '\n' '|' | tail -c 300)"
done
if [[ ${VERIFY[nk]:-} == ok && ${VERIFY[curl]:-} == ok ]]; then
    if ! diff <(mask "$work/v.nk") <(mask "$work/v.curl") >"$work/v.diff"; then
        VERIFY[nk]="FAIL: head differs from curl's: $(tr -d '\r' <"$work/v.diff" | tr '\n' ' ' | tail -c 300)"
        status=1
    else
        VERIFY[nk]="ok, = curl's head (but Date, Connection)"
    fi
fi

# ---------------------------------------------------------------- timed runs
run_tools=()
for t in "${tools[@]}"; do [[ ${VERIFY[$t]} == ok* ]] && run_tools+=("$t"); done
proc_rounds 10_head "${run_tools[@]}"

if ! kill -0 "$ng_pid" 2>/dev/null; then
    log "10_head: nginx died during the run: $(tail -c 300 "$work/error.log" 2>/dev/null | tr '\n' ' ')"
    status=1
fi

# ---------------------------------------------------------------- table
nk_ms=$(per_ms nk) curl_ms=$(per_ms curl)
valid=1
[[ $have_nk == 1 && ${VERIFY[nk]:-} == ok* && -z ${FAILS[nk]:-} && ${VERIFY[curl]:-} == ok && -z ${FAILS[curl]:-} ]] || valid=0
# nk / curl time: overall (the bar) and per round (same round, same conditions).
ratio_cell="INVALID"
if ((valid)); then
    ratio_cell=$(awk -v a="$nk_ms" -v b="$curl_ms" -v bar="$BAR" 'BEGIN {
        r = a / b; printf "%.2fx (bar <= %.1fx: %s)", r, bar, (r <= bar ? "PASS" : "FAIL") }')
    read -ra a <<<"${ROUND_MS[nk]}"; read -ra b <<<"${ROUND_MS[curl]}"
    rr=""
    for ((i = 0; i < ${#a[@]} && i < ${#b[@]}; i++)); do
        rr+="$(awk -v x="${a[$i]}" -v y="${b[$i]}" 'BEGIN { printf "%.2f", x / y }') "
    done
    read -r m lo hi <<<"$(stats "$rr" %.2f)"
    ratio_cell+="; per round $m ($lo-$hi)"
fi

label() {
    case $1 in
    nk) echo "nk head" ;;
    curl) echo "curl -sI" ;;
    true) echo "/bin/true (process floor)" ;;
    esac
}
table=$(
    echo "| tool | command | processes | total s | ms per request | per round ms, median (min-max) | nk / curl time | heads verified |"
    echo "| --- | --- | --- | --- | --- | --- | --- | --- |"
    for t in nk curl true; do
        [[ $t == true ]] && ((FLOOR == 0)) && continue
        r=""
        if [[ $t == nk && $have_nk == 0 ]]; then
            echo "| nk head | \`nk head http://127.0.0.1:P/\` | - | $nk_why | | | | |"
            continue
        fi
        [[ $t == nk ]] && r=$ratio_cell
        proc_row "$t" "$r"
    done
)

{
    echo "# 10_head: $N sequential processes per tool, one HEAD request each, same nginx on 127.0.0.1"
    echo
    echo "$(date -u '+%Y-%m-%d %H:%M UTC'), $(uname -r), $(nproc) CPUs, load $(cut -d' ' -f1 /proc/loadavg); nk: $NK$( ((have_nk)) || echo " ($nk_why)"); $("$CURL" --version | head -1 | awk '{print $1, $2}'); nginx $ng_ver; git $(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo none)"
    echo
    echo "$table"
    echo
    echo "nginx (one process: master_process off, daemon off) on 127.0.0.1:P serves a $size-byte index.html;"
    echo "access_log off, keepalive_timeout 65. Each tool sends its default request (nk: \`Connection: close\`;"
    echo "curl: keep-alive, closed by curl on exit). A plain bash loop starts the processes one after the"
    echo "other (stdout to a file, no per-process wrapper); total s = wall time of the loops. $RUNS rounds of"
    echo "about $((N / RUNS)) per tool, order alternating. Every process exited 0 and printed exactly one"
    echo "\`HTTP/1.1 200 OK\` head (Content-Length: $size, CRLF lines, no body) unless FAILED is shown."
    echo "Bar: nk time / curl time <= ${BAR}x (total over all rounds; per round = the same ratio in each round)."
} >"$work/out.md"
finish "$out_md"
