# Scenario 6 of scripts/bench.sh (sourced by it, not run): the capturer following many
# idle containers. For each size of --scale-sizes (default 10,100,300,1000) the containers
# are grown to that size (never restarted from zero), each `sh -c 'while :; do echo tick;
# sleep 10; done'`; then, over --scale-minutes (default 1) each:
#   - no capturer: dockerd's and containerd's CPU (the baseline the containers cost);
#   - a capturer with read_from = "api", then one with read_from = "files" (one after the
#     other, so each dockerd figure is that mode's alone): once every container is
#     followed (log_capturer_active_streams) and a settling pause, the capturer's CPU
#     (utime + stime), dockerd's and containerd's CPU over the window, then the
#     capturer's VmRSS, threads and FDs, then --scale-starts (default 5) new containers
#     that print a line at once: the median start-to-first-record (the line's Docker
#     timestamp to the record in the file sink, as scenario 3).
# Prints a table, adds "scale" to --json, writes <--scale-plot>.dat and draws
# <--scale-plot>.svg with gnuplot (installed like bc when missing).
# Uses bench.sh's helpers: start_capturer, stop_capturer, metric, cpu_seconds, rss_kib,
# count, first_records, now, result.

scale_grow() { # $1 = containers running now, $2 = wanted
    [ "$2" -gt "$1" ] || return 0
    seq $(($1 + 1)) "$2" | xargs -P 4 -I{} docker run -d --network none --name "$PREFIX-scale-{}" \
        "$IMAGE" sh -c 'while :; do echo tick; sleep 10; done' >/dev/null
}

scale_check_machine() { # $1 = largest size: warns when the limits look too tight
    local max=$1 pids threads
    pids=$(ps -eLf --no-headers | wc -l)
    # each container: a containerd shim (about 11 threads), sh and its sleep; the capturer
    # one thread per followed container
    threads=$((pids + max * 15))
    [ "$threads" -lt "$(cat /proc/sys/kernel/pid_max)" ] ||
        echo "warning: about $threads tasks needed, kernel.pid_max is $(cat /proc/sys/kernel/pid_max)" >&2
    [ "$threads" -lt "$(cat /proc/sys/kernel/threads-max)" ] ||
        echo "warning: about $threads tasks needed, kernel.threads-max is $(cat /proc/sys/kernel/threads-max)" >&2
    [ "$(ulimit -n)" -ge $((max * 2 + 256)) ] ||
        echo "warning: ulimit -n is $(ulimit -n), the capturer may need $((max * 2 + 256)) FDs" >&2
}

scale_window() { # sleeps SCALE_MINUTES; prints "elapsed_s dockerd_cpu_s containerd_cpu_s capturer_cpu_s records"
    local pid=${1:-} t0 t1 d0 k0 c0=0 c1=0 r0=0 r1=0
    t0=$(now); d0=$(cpu_seconds "$DOCKERD"); k0=$(cpu_seconds "$CONTAINERD")
    if [ -n "$pid" ]; then c0=$(cpu_seconds "$pid"); r0=$(metric log_capturer_sink_records_total); fi
    sleep "$(echo "$SCALE_MINUTES * 60" | bc -l)"
    if [ -n "$pid" ]; then c1=$(cpu_seconds "$pid"); r1=$(metric log_capturer_sink_records_total); fi
    t1=$(now)
    echo "$(echo "$t1 - $t0" | bc -l) $(echo "$(cpu_seconds "$DOCKERD") - $d0" | bc -l)" \
        "$(echo "$(cpu_seconds "$CONTAINERD") - $k0" | bc -l) $(echo "$c1 - $c0" | bc -l) $((r1 - r0))"
}

scale_scenario() {
    local sizes have=0 n mode t0 followed follow_s lat el dcpu kcpu ccpu recs rss thr fds p50 seen
    IFS=, read -ra sizes <<<"$SCALE_SIZES"
    DOCKERD=$(pgrep -xo dockerd); CONTAINERD=$(pgrep -xo containerd)
    echo "== scenario 6: scale, ${sizes[*]} idle followed containers (a line every 10 s), each mode in turn, CPU over $SCALE_MINUTES min"
    scale_check_machine "${sizes[-1]}"
    local tsv="$WORK/scale.tsv"
    : > "$tsv"
    for n in "${sizes[@]}"; do
        t0=$(now)
        scale_grow "$have" "$n"
        printf '   %s containers running (%s started in %.0f s)\n' "$n" $((n - have)) "$(echo "$(now) - $t0" | bc -l)"
        have=$n
        read -r el dcpu kcpu _ <<<"$(scale_window)"
        printf '%s\tnone\t0\t0\t%s\t%s\t%s\t0\t0\t0\t0\t0\tnull\t0\n' "$n" "$el" "$dcpu" "$kcpu" >> "$tsv"
        for mode in api files; do
            t0=$(now)
            start_capturer "$PREFIX-scale-*" now "$mode"
            for _ in $(seq 1 3000); do
                [ "$(metric log_capturer_active_streams)" -ge "$n" ] && break
                sleep 0.1
            done
            follow_s=$(echo "$(now) - $t0" | bc -l)
            followed=$(metric log_capturer_active_streams)
            [ "$followed" -ge "$n" ] || echo "warning: $mode mode follows $followed of $n containers" >&2
            sleep $((5 + n / 100))  # the start-up burst (an inspect and a stream per container) settles
            read -r el dcpu kcpu ccpu recs <<<"$(scale_window "$CAP_PID")"
            rss=$(rss_kib "$CAP_PID" VmRSS); thr=$(count "$CAP_PID" task); fds=$(count "$CAP_PID" fd)
            lat=$(first_records "$WORK/out.jsonl" "$SCALE_STARTS" "$PREFIX-scale-new-$mode-$n")
            read -r p50 _ seen _ <<<"$lat"
            stop_capturer
            docker ps -aq --filter "name=$PREFIX-scale-new-" | xargs -r -n 4 docker rm -f >/dev/null
            printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$n" "$mode" "$followed" \
                "$follow_s" "$el" "$dcpu" "$kcpu" "$ccpu" "$rss" "$thr" "$fds" "$recs" "$p50" "$seen" >> "$tsv"
            printf '   %5s %-5s followed %s in %.1f s, RSS %s KiB, %s threads, %s FDs, CPU %.2f s in %.0f s, %s records, first record %s ms\n' \
                "$n" "$mode" "$followed" "$follow_s" "$rss" "$thr" "$fds" "$ccpu" "$el" "$recs" "$p50"
        done
    done
    mkdir -p "$(dirname "$SCALE_PLOT")"
    python3 scripts/bench-scale-report.py "$tsv" "$SCALE_MINUTES" "$SCALE_STARTS" "$SCALE_PLOT.dat" "$WORK/scale.json"
    result scale "$(cat "$WORK/scale.json")"
    command -v gnuplot >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq gnuplot-nox >/dev/null; }
    scale_plot "$SCALE_PLOT.dat" "$SCALE_PLOT.svg"
    echo "== scale data: $SCALE_PLOT.dat, plot: $SCALE_PLOT.svg"
    scale_remove
}

scale_remove() { # removes the scenario's containers, four at a time
    # Not all in one `docker rm -f`: that, for 1000 containers while other clients started
    # and removed theirs, left dockerd 20.10.24 deadlocked in libnetwork (the controller's
    # lock and a network's taken in opposite orders by sandbox deletions) on 2026-12-07
    # (docs/BENCHMARKS.md). Fewer at a time makes that less likely, not impossible.
    docker ps -aq --filter "name=$PREFIX-scale-" | xargs -r -n 4 docker rm -f >/dev/null
}

scale_plot() { # $1 = data file (from bench-scale-report.py), $2 = SVG
    gnuplot <<GP
set terminal svg size 960,420 dynamic font "sans,11" background "white"
set output "$2"
set multiplot layout 1,2 title "log-capturer, idle followed containers (a line every 10 s each)"
set logscale x
set xlabel "followed containers"
set grid
set key top left
set ylabel "capturer RSS (MiB)"
plot "$1" using 1:(\$2/1024) with linespoints lw 2 title "api mode", \
     "$1" using 1:(\$3/1024) with linespoints lw 2 title "files mode", \
     "$1" using 1:(7+\$1*48/1024) with lines dt 2 lw 2 lc "red" title "goal: 7 MiB + 48 KiB per container"
set ylabel "CPU seconds per minute (0 not drawn)"
set logscale y
plot "$1" using 1:4 with linespoints lw 2 title "capturer, api mode", \
     "$1" using 1:5 with linespoints lw 2 title "capturer, files mode", \
     "$1" using 1:6 with linespoints dt 2 title "dockerd, api mode", \
     "$1" using 1:7 with linespoints dt 2 title "dockerd, files mode", \
     "$1" using 1:8 with linespoints dt 3 lc "gray" title "dockerd, no capturer"
unset multiplot
GP
}
