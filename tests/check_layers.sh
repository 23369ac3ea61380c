#!/bin/sh
# The layers of lib/ (tests/layers.txt) from the library's objects (TAP): run by make check with
# CLT_LAYER_OBJECTS naming the objects; tests/check_layers.py says what is checked.
if ! command -v python3 >/dev/null 2>&1; then
    echo "1..0 # SKIP no python3"
    exit 0
fi
[ -n "$CLT_LAYER_OBJECTS" ] || { echo "Bail out! CLT_LAYER_OBJECTS is not set (make check sets it)"; exit 1; }
# shellcheck disable=SC2086
exec python3 "$(dirname "$0")/check_layers.py" --nm "${NM:-nm}" $CLT_LAYER_OBJECTS
