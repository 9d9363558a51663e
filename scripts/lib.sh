# Shell helpers shared by the scripts (sourced, not run).

# True when FILE is a statically linked executable. glibc's ldd prints
# "not a dynamic executable" (static) or "statically linked" (static-pie).
is_static() {
    local out
    [ -x "$1" ] || return 1
    if command -v ldd >/dev/null 2>&1; then
        out="$(LC_ALL=C ldd "$1" 2>&1 || true)"
        case "$out" in
            *"not a dynamic executable"*|*"statically linked"*) return 0 ;;
        esac
        return 1
    fi
    if command -v file >/dev/null 2>&1; then
        LC_ALL=C file -L "$1" | grep -q 'statically linked'
        return
    fi
    return 1
}
