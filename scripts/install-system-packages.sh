#!/usr/bin/env bash
# Installs the Debian packages the project needs, only those that are missing:
# a JDK Cassandra 5.0 runs on (17), Maven, which fetches Cassandra's jars, npm (the Compose schema), and Chromium for the browser test
# (driven by Playwright through executable_path, so no browser is ever downloaded), and python3-venv when the
# interpreter lacks venv. No Python package comes from here: they go into .venv/ (uv, uv.lock).
set -euo pipefail

missing=()
if ! ls /usr/lib/jvm/*17*/bin/java >/dev/null 2>&1 && ! java -version 2>&1 | grep -q 'version "17'; then
  missing+=(openjdk-17-jdk-headless)
fi
command -v mvn >/dev/null 2>&1 || missing+=(maven)
command -v npm >/dev/null 2>&1 || missing+=(npm)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
# `python3 -m venv`, which makes the environment uv is installed into (make setup): Debian ships it apart from python3.
"${PYTHON:-python3}" -c 'import ensurepip, venv' >/dev/null 2>&1 || missing+=(python3-venv)

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
echo "installing Debian packages: ${missing[*]}"
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
