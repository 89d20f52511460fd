// bench/mp_fit.py on the MicroPython webassembly port: a 32-bit MicroPython, whose
// objects are the size an RP2040's are (the unix port here is 64-bit).
//
//   node bench/wasm/mp_fit.mjs ROOT ARGS.json HEAP_BYTES   ->  mp_fit.py's JSON on stdout,
//                                                           with "bare": the interpreter alone
//
// ROOT holds firmware/ and bench/mp_fit.py.  The firmware's .py files are copied into the port's in-memory filesystem.  This port
// frees garbage only between two top-level calls (its collector cannot tell the live
// part of the C stack in the middle of one), so the runner takes each live-heap figure
// in a call of its own and hands it to mp_fit.py's steps() generator.
import { loadMicroPython } from "@micropython/micropython-webassembly-pyscript";
import fs from "node:fs";
import path from "node:path";

const [repo, args, heap] = process.argv.slice(2);
let out = "";
const mp = await loadMicroPython({
  heapsize: parseInt(heap || "1048576", 10),
  stdout: (line) => { out += line + "\n"; },
  stderr: (line) => process.stderr.write(line + "\n"),
  linebuffer: true,
});

function copy(src, dst) {
  mp.FS.mkdir(dst);
  for (const e of fs.readdirSync(src, { withFileTypes: true })) {
    const s = path.join(src, e.name), d = dst + "/" + e.name;
    if (e.isDirectory()) { if (e.name !== "__pycache__") copy(s, d); }
    else if (e.name.endsWith(".py")) mp.FS.writeFile(d, fs.readFileSync(s));
  }
}

mp.FS.mkdir("/fw");
copy(path.join(repo, "firmware"), "/fw/firmware");
const a = JSON.parse(fs.readFileSync(args, "utf8"));
a.source = "/fw";
a.state = "/state";
mp.FS.mkdir("/state");
mp.FS.writeFile("/fit_args.json", JSON.stringify(a));
mp.runPython('import gc, sys\nsys.path.insert(0, "/fw")\n');
mp.runPython("gc.collect()\ngc.collect()\nBARE = gc.mem_alloc()\n");   // the interpreter alone
mp.runPython(fs.readFileSync(path.join(repo, "bench", "mp_fit.py"), "utf8"));
mp.runPython("g = steps(args())\ng.send(None)\n");
for (;;) {
  try {
    mp.runPython("g.send(live())");
  } catch (e) {
    if (e.type === "StopIteration") break;
    process.stderr.write(String(e.message || e) + "\n");
    process.exit(1);
  }
}
const d = JSON.parse(out.trim().split("\n").pop());
d.bare = mp.globals.get("BARE");   // d.base - d.bare: mp_fit.py's own code
process.stdout.write(JSON.stringify(d) + "\n");
