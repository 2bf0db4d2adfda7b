// Runs a wasm32-wasip1 command module under Node's V8 (the engine Envoy embeds), timing it:
//   node scripts/run-wasi.cjs target/wasm32-wasip1/release/examples/profile_decide.wasm verify 10000
// Imports the module has beyond WASI (the proxy-wasm host calls linked in with the library, never
// called by the examples) are stubbed.
const { WASI } = require('node:wasi');
const fs = require('fs');

const wasi = new WASI({ version: 'preview1', args: ['wasm', ...process.argv.slice(3)], env: {} });
const wasmModule = new WebAssembly.Module(fs.readFileSync(process.argv[2]));
const imports = wasi.getImportObject();
for (const imp of WebAssembly.Module.imports(wasmModule)) {
  imports[imp.module] = imports[imp.module] || {};
  if (!(imp.name in imports[imp.module])) {
    imports[imp.module][imp.name] = () => { throw new Error(`host call ${imp.name} is not available`); };
  }
}
const instance = new WebAssembly.Instance(wasmModule, imports);
const start = process.hrtime.bigint();
const cpu0 = process.cpuUsage();
wasi.start({ exports: { memory: instance.exports.memory, _start: instance.exports._start } });
// CPU time of this process as well: on a shared machine it is steadier than the wall clock.
const cpu = process.cpuUsage(cpu0);
console.log(`elapsed ${(Number(process.hrtime.bigint() - start) / 1e6).toFixed(1)} ms, cpu ${((cpu.user + cpu.system) / 1e3).toFixed(1)} ms`);
