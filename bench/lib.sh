# Shared helpers for the HTTP benchmarks in bench/. Source it; it defines functions only.
#
# Conventions: every helper that can fail prints why on stderr and returns non-zero;
# the caller runs under `set -euo pipefail`, so a broken step stops the benchmark.

# Where benchmark builds go: never /work/main/target, so a benchmark never holds the
# cargo lock a developer's build is waiting for.
BENCH_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/veche/bench-target}

bench_die() {
    echo "bench: FAILED: $*" >&2
    exit 1
}

bench_log() {
    echo "bench: $*" >&2
}

# A TCP port nobody listens on right now. Racy in principle (someone may take it before
# the server binds), but the server then fails to start and the caller says so.
bench_free_port() {
    local port i low=32768
    # Below the kernel's ephemeral range, which outgoing connections take their source
    # ports from: a port picked there can be taken between the check and the bind.
    read -r low _ < /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || true
    ((low > 11024)) || bench_die "the ephemeral port range starts at $low: no room below it for servers"
    for i in $(seq 1 50); do
        port=$((10000 + RANDOM % (low - 10000)))
        # A refused connection means nobody listens there.
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            echo "$port"
            return 0
        fi
    done
    bench_die "no free port found"
}

# Waits until `url` answers 200, while `pid` stays alive; up to `timeout` seconds.
bench_wait_ready() {
    local url=$1 pid=$2 timeout=${3:-30} i
    for i in $(seq 1 $((timeout * 10))); do
        kill -0 "$pid" 2>/dev/null || bench_die "server (pid $pid) exited before $url answered"
        [[ $(curl -s -o /dev/null -w '%{http_code}' "$url" || true) == 200 ]] && return 0
        sleep 0.1
    done
    bench_die "$url did not answer 200 within ${timeout}s"
}

# Makes `wrk` available: Debian's package, installed if missing. Returns non-zero (no
# exit) when it cannot be installed, so the caller can fall back to oha.
bench_ensure_wrk() {
    command -v wrk >/dev/null && return 0
    local sudo=()
    if [[ $(id -u) != 0 ]]; then
        command -v sudo >/dev/null || return 1
        sudo=(sudo -n)
    fi
    bench_log "installing wrk from Debian"
    # Try without `apt-get update` first: the index may already list wrk.
    "${sudo[@]}" apt-get install -y -qq wrk >&2 ||
        { "${sudo[@]}" apt-get update -qq >&2 && "${sudo[@]}" apt-get install -y -qq wrk >&2; } ||
        return 1
    command -v wrk >/dev/null
}

# Makes `oha` available, built from crates.io (the fallback when wrk cannot be had).
bench_ensure_oha() {
    command -v oha >/dev/null && return 0
    bench_log "installing oha from crates.io (builds from source, takes minutes)"
    CARGO_TARGET_DIR="$BENCH_TARGET_DIR" cargo install oha --locked >&2 || return 1
    command -v oha >/dev/null || [[ -x $HOME/.cargo/bin/oha ]]
}

# wrk prints latencies as 608.00us, 1.10ms, 2.00s or 1.00m; this turns one into ms.
bench_to_ms() {
    awk -v t="$1" 'BEGIN {
        n = t + 0; u = t; sub(/^[0-9.]+/, "", u)
        if (u == "us") n /= 1000; else if (u == "s") n *= 1000; else if (u == "m") n *= 60000
        else if (u != "ms") { print "bad time: " t > "/dev/stderr"; exit 1 }
        printf "%.2f", n
    }'
}

# Reads wrk --latency output on stdin; prints one line:
#   <requests> <req/s> <p50 ms> <p99 ms> <non-2xx/3xx> <socket errors>
bench_parse_wrk() {
    local out rps p50 p99 requests non2xx errors
    out=$(cat)
    requests=$(awk '/ requests in / { print $1; exit }' <<<"$out")
    rps=$(awk '/^Requests\/sec:/ { print $2; exit }' <<<"$out")
    p50=$(awk '$1 == "50%" { print $2; exit }' <<<"$out")
    p99=$(awk '$1 == "99%" { print $2; exit }' <<<"$out")
    # Absent lines mean zero.
    non2xx=$(awk -F': *' '/Non-2xx or 3xx responses/ { print $2; exit }' <<<"$out")
    errors=$(awk '/Socket errors:/ { gsub(/,/, ""); print $4 + $6 + $8 + $10; exit }' <<<"$out")
    [[ -n $requests && -n $rps && -n $p50 && -n $p99 ]] || {
        echo "$out" >&2
        bench_die "could not parse wrk output (above)"
    }
    echo "$requests $rps $(bench_to_ms "$p50") $(bench_to_ms "$p99") ${non2xx:-0} ${errors:-0}"
}

# Reads oha's JSON (-j or --output-format json) on stdin; prints the same line as
# bench_parse_wrk. With -z, oha aborts the requests in flight at the deadline and counts
# them as errors; those are not failures.
bench_parse_oha() {
    jq -r '
        ([.statusCodeDistribution | to_entries[] | select((.key | tonumber) >= 400) | .value] | add // 0) as $bad
        | ([.errorDistribution // {} | to_entries[] | select(.key | test("deadline") | not) | .value] | add // 0) as $err
        | "\([.statusCodeDistribution[]] | add // 0) \(.summary.requestsPerSec)"
          + " \(.latencyPercentiles.p50 * 1000 * 100 | round / 100) \(.latencyPercentiles.p99 * 1000 * 100 | round / 100)"
          + " \($bad) \($err)"'
}

# VmRSS of a process, in MiB with one decimal.
bench_rss_mib() {
    awk '/^VmRSS:/ { printf "%.1f", $2 / 1024; found = 1 } END { exit !found }' "/proc/$1/status" ||
        bench_die "no VmRSS for pid $1"
}

# "" when `value op target` holds (op is >= or <), else "MISSED". A benchmark reports a
# missed target; it does not fail on one.
bench_verdict() {
    awk -v v="$1" -v op="$2" -v t="$3" 'BEGIN {
        ok = (op == ">=") ? (v + 0 >= t + 0) : (v + 0 < t + 0)
        print ok ? "" : "MISSED"
    }'
}

# a ÷ b with three decimals: verdicts compare what is printed, and with two, 0.996 would
# pass for 1.00.
bench_ratio() {
    awk -v a="$1" -v b="$2" 'BEGIN { if (b + 0 == 0) print "nan"; else printf "%.3f", a / b }'
}

# Settles the load tool in TOOL: wrk (installed when missing), else oha from crates.io;
# for oha, sets oha_json to the flag of its JSON output.
bench_choose_tool() {
    if [[ $TOOL == wrk ]] && ! bench_ensure_wrk; then
        bench_log "wrk cannot be installed here; falling back to oha"
        TOOL=oha
    fi
    if [[ $TOOL == oha ]]; then
        bench_ensure_oha || bench_die "neither wrk nor oha could be installed"
        command -v jq >/dev/null || bench_die "the oha fallback needs jq to read oha's JSON"
        command -v oha >/dev/null || PATH="$HOME/.cargo/bin:$PATH"
        # Newer oha spells JSON output --output-format json; older ones -j.
        if oha --help | grep -q -- --output-format; then oha_json=(--output-format json); else oha_json=(-j); fi
    fi
    [[ $TOOL == wrk || $TOOL == oha ]] || bench_die "TOOL must be wrk or oha, not '$TOOL'"
}
