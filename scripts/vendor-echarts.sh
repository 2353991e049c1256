#!/usr/bin/env bash
# Fetches Apache ECharts from the npm registry and puts its minified build in the dashboard's
# assets (crates/server/assets/vendor/), with its licence; prints the SHA-256 to record in
# crates/server/assets/README.md.
# 从 npm 获取 ECharts 的压缩文件放入看板资源目录。
#
# usage: scripts/vendor-echarts.sh [VERSION=6.1.0]
set -euo pipefail
cd "$(dirname "$0")/.."
version=${1:-6.1.0}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack "echarts@$version" >/dev/null && tar xzf "echarts-$version.tgz" package/dist/echarts.min.js package/LICENSE)
cp "$work/package/dist/echarts.min.js" crates/server/assets/vendor/echarts.min.js
cp "$work/package/LICENSE" crates/server/assets/vendor/ECHARTS-LICENSE
sha256sum crates/server/assets/vendor/echarts.min.js
