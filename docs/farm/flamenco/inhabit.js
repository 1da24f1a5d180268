// SPDX-License-Identifier: GPL-3.0-or-later
//
// Inhabit shots as a Flamenco 3 custom job type: copy this file into the
// Flamenco Manager's `scripts/` folder (next to the manager's executable) and
// restart the manager; "Inhabit Shot" then appears in the Blender add-on's job
// types. Each job holds one task per shot, running
//     inhabit render SHOT.blend ... --server FRONT_END --resume --save-blend ...
// on a worker (CPU is enough: it renders the passes; the GPU work runs on the
// Inhabit server or cluster front end named by `server`). A requeued task
// continues its take because of --resume. Exit codes (docs/farm.md): 0 done,
// 1 failed or server lost (retry), 2 bad input (do not retry).

const JOB_TYPE = {
    label: "Inhabit Shot",
    description: "Generate the animated character into each shot with an Inhabit server (one task per shot)",
    settings: [
        // The shot(s). Empty `shots` = the .blend this job was submitted from.
        { key: "blendfile", type: "string", required: true, visible: "web",
          description: "Blend file of the shot (filled in by Flamenco on submission)" },
        { key: "shots", type: "string", required: false, visible: "submission",
          description: "More shots to run with the same settings: .blend paths separated by ';' (optional)" },
        { key: "frames", type: "string", required: true,
          eval: "f'{C.scene.frame_start}-{C.scene.frame_end}'",
          evalInfo: { showLinkButton: true, description: "Scene frame range" },
          description: "Frame range, e.g. '1-120' (the scene's range when empty)" },
        { key: "armature", type: "string", required: true, default: "Rig",
          description: "Name of the character's armature object" },
        { key: "reference", type: "string", subtype: "file_path", required: true,
          description: "Reference image of the character (a path every worker can read)" },
        { key: "reference_keypoints", type: "string", subtype: "file_path", required: false,
          description: "Keypoints of the reference (.npy or .json; optional for engines that detect them)" },
        { key: "engine", type: "string", required: true, default: "wan-animate",
          description: "Inhabit engine (preview, aa2, wan-animate)" },
        { key: "server", type: "string", required: true, default: "inhabit-frontend:5557",
          description: "Address of the Inhabit server or cluster front end (host:port)" },
        { key: "curve_server_key", type: "string", subtype: "file_path", required: false,
          description: "The server's public key file (needed off loopback)" },
        { key: "curve_client_key", type: "string", subtype: "file_path", required: false,
          description: "This farm's client secret key file (needed off loopback)" },
        { key: "output_root", type: "string", subtype: "dir_path", required: true, visible: "submission",
          description: "Folder for the takes: OUTPUT_ROOT/<scene>/take_NNN/frame_XXXXX.png" },
        { key: "extra_args", type: "string", required: false, visible: "submission",
          description: "Further `inhabit render` options, e.g. '--param steps=20 --samples 8'" },
        { key: "inhabit", type: "string", required: true, default: "inhabit", visible: "submission",
          description: "The inhabit command on the workers" },
    ],
};

function compileJob(job) {
    const settings = job.settings;
    for (const shot of shotsOf(settings)) {
        const task = author.Task(`inhabit-${path.stem(shot)}`, "misc");
        task.addCommand(author.Command("exec", { exe: settings.inhabit, args: renderArgs(settings, shot) }));
        job.addTask(task);
    }
}

function shotsOf(settings) {
    const more = (settings.shots || "").split(";").map((s) => s.trim()).filter((s) => s.length > 0);
    return [settings.blendfile, ...more.filter((s) => s !== settings.blendfile)];
}

function renderArgs(settings, shot) {
    const saved = path.join(path.dirname(shot), `${path.stem(shot)}_inhabit.blend`);
    let args = [
        "render", shot,
        "--armature", settings.armature,
        "--reference", settings.reference,
        "--engine", settings.engine,
        "--frames", settings.frames,
        "--out", settings.output_root,
        "--server", settings.server,
        "--save-blend", saved,
        "--resume",
    ];
    if (settings.reference_keypoints) {
        args.push("--reference-keypoints", settings.reference_keypoints);
    }
    if (settings.curve_server_key) {
        args.push("--curve-server-key", settings.curve_server_key);
    }
    if (settings.curve_client_key) {
        args.push("--curve-client-key", settings.curve_client_key);
    }
    if (settings.extra_args) {
        args = args.concat(settings.extra_args.split(/\s+/).filter((a) => a.length > 0));
    }
    return args;
}
