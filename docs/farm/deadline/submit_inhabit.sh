#!/bin/sh
# Submit one Deadline job per shot, each a Command Line plugin job running
# `inhabit render ... --resume` against the Inhabit server / cluster front end.
#
#   sh submit_inhabit.sh shots.txt inhabit-frontend:5557 /shots/out
#
# shots.txt holds one .blend path per line (paths the Deadline workers can read).
# Exit code 2 of `inhabit render` is bad input: the job is marked failed after
# one error (OverrideTaskFailureDetection), not retried endlessly; exit 1 (job
# failed, server lost, cluster node lost) is retried and --resume continues the take.
set -eu
SHOTS=$1
SERVER=$2
OUT=$3
REFERENCE=${REFERENCE:-/shots/ref.png}
REFERENCE_KEYPOINTS=${REFERENCE_KEYPOINTS:-/shots/ref_pose.npy}
ENGINE=${ENGINE:-wan-animate}
KEYS=${KEYS:-/farm/keys}
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

while IFS= read -r SHOT; do
    [ -n "$SHOT" ] || continue
    NAME=$(basename "$SHOT" .blend)
    cat > "$TMP/job_info.job" <<INFO
Plugin=CommandLine
Name=inhabit $NAME
Frames=0
ChunkSize=1
Pool=inhabit
OverrideTaskFailureDetection=True
FailureDetectionTaskErrors=3
INFO
    cat > "$TMP/plugin_info.job" <<PLUGIN
Executable=inhabit
Arguments=render "$SHOT" --armature Rig --reference "$REFERENCE" --reference-keypoints "$REFERENCE_KEYPOINTS" --engine $ENGINE --out "$OUT" --server $SERVER --curve-server-key "$KEYS/server.key" --curve-client-key "$KEYS/client.key_secret" --save-blend "${SHOT%.blend}_inhabit.blend" --resume
Shell=default
ShellExecute=False
PLUGIN
    deadlinecommand "$TMP/job_info.job" "$TMP/plugin_info.job"
done < "$SHOTS"
