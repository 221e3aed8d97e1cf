// The HTML report's inline stylesheet and script (both covered by the page's Content-Security-Policy hashes;
// CSP Level 3 §6.7.3 hash-source). The console palette is the standard VGA 16-colour text-mode palette.

/** VGA text-mode colours 0-F (IBM VGA Technical Reference, default DAC palette). */
export const VGA_PALETTE = ["#000000", "#0000aa", "#00aa00", "#00aaaa", "#aa0000", "#aa00aa", "#aa5500", "#aaaaaa",
  "#555555", "#5555ff", "#55ff55", "#55ffff", "#ff5555", "#ff55ff", "#ffff55", "#ffffff"];

const vgaClasses = VGA_PALETTE.map((c, i) => `.f${i.toString(16)}{color:${c}}.b${i.toString(16)}{background:${c}}`).join("");

export const REPORT_CSS = `
:root{--ok:#1a7f37;--bad:#cf222e;--warn:#9a6700;--muted:#6e7781;--line:#d0d7de;--bg2:#f6f8fa;--accent:#0969da}
*{box-sizing:border-box}
body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;color:#1f2328;background:#fff}
header{padding:16px 24px;border-bottom:1px solid var(--line);background:var(--bg2)}
header h1{margin:0 0 4px;font-size:20px}
header .sub{color:var(--muted);overflow-wrap:anywhere}
nav{padding:6px 24px;border-bottom:1px solid var(--line);font-size:13px}
nav a{margin-right:14px;color:var(--accent);text-decoration:none}
main{padding:8px 24px 40px;max-width:1400px}
section{margin:18px 0 26px}
h2{font-size:17px;margin:0 0 10px;padding-bottom:4px;border-bottom:1px solid var(--line)}
h3{font-size:15px;margin:14px 0 8px}
code,pre,.mono{font-family:"DejaVu Sans Mono","Liberation Mono",Menlo,Consolas,monospace;font-size:12.5px}
pre{white-space:pre-wrap;overflow-wrap:anywhere;margin:4px 0}
table{border-collapse:collapse;margin:6px 0}
th,td{border:1px solid var(--line);padding:3px 8px;text-align:left;vertical-align:top}
th{background:var(--bg2);font-weight:600}
td{overflow-wrap:anywhere}
.muted{color:var(--muted)}
.badge{display:inline-block;padding:1px 8px;border-radius:10px;font-weight:700;font-size:12px;color:#fff;background:var(--muted);text-transform:uppercase;letter-spacing:.03em}
.badge.boots,.badge.ok{background:var(--ok)}.badge.fails,.badge.error,.badge.stopped{background:var(--bad)}
.badge.inconclusive,.badge.warning{background:var(--warn)}.badge.info{background:var(--accent)}
.verdicts{display:flex;flex-wrap:wrap;gap:12px}
.vcard{border:1px solid var(--line);border-left:6px solid var(--muted);border-radius:6px;padding:10px 14px;min-width:300px;flex:1}
.vcard.boots{border-left-color:var(--ok)}.vcard.fails{border-left-color:var(--bad)}.vcard.inconclusive{border-left-color:var(--warn)}
.vcard .big{font-size:18px;font-weight:700}
.chain{display:flex;flex-wrap:wrap;align-items:stretch;gap:0;margin:8px 0}
.step{position:relative;border:2px solid var(--line);border-radius:8px;padding:8px 10px;flex:1 1 0;min-width:130px;max-width:260px;margin:0 26px 10px 0;background:#fff}
.step:not(:last-child)::after{content:"";position:absolute;right:-24px;top:50%;border:9px solid transparent;border-left:14px solid var(--muted);transform:translateY(-50%)}
.step h4{margin:0 0 4px;font-size:13px;text-transform:uppercase;letter-spacing:.04em;color:var(--muted)}
.step.ok{border-color:var(--ok);background:#f0fff4}.step.stopped{border-color:var(--bad);background:#fff5f5}
.step.inconclusive{border-color:var(--warn);background:#fffbea}.step.unreached{border-style:dashed;opacity:.6}
.step.skipped{border-style:dotted}
.step ul{margin:0;padding-left:16px;font-size:12.5px;overflow-wrap:anywhere}
details.reads summary{font-weight:600;margin:10px 0 4px;cursor:pointer}
.step details{font-size:12px}.step details pre{max-height:220px;overflow:auto;background:var(--bg2);padding:4px}
.diskmap svg{width:100%;height:auto;max-width:1200px;border:1px solid var(--line);background:#fbfcfd}
.diskmap .part{stroke:#57606a;stroke-width:1}
.diskmap .lane{fill:#eef1f4}
.diskmap text{font:12px system-ui,sans-serif;fill:#1f2328}
.diskmap .rd{fill:var(--bad);opacity:.85;cursor:pointer}
.diskmap .rd:hover,.diskmap .rd.sel{fill:#ff8c00;opacity:1}
.pinfo{min-height:2.6em;padding:6px 10px;border:1px solid var(--line);background:var(--bg2);margin:6px 0;white-space:pre-wrap}
.console{display:inline-block;background:#000;padding:8px 10px;border:10px solid #2d2d2d;border-radius:6px;line-height:1.2;font-size:14px;white-space:pre;overflow-x:auto}
.console .row{display:block;height:1.2em}
${vgaClasses}
.fb img{max-width:100%;image-rendering:pixelated;border:1px solid var(--line)}
.finding{border:1px solid var(--line);border-left:5px solid var(--muted);border-radius:4px;padding:6px 10px;margin:8px 0}
.finding.error{border-left-color:var(--bad)}.finding.warning{border-left-color:var(--warn)}.finding.info{border-left-color:var(--accent)}
.finding .code{font-weight:700}
.finding .remedy{margin-top:4px}
.finding .remedy b{color:var(--ok)}
.disasm td{font-family:"DejaVu Sans Mono",monospace;font-size:12.5px;border:none;padding:1px 10px 1px 0}
.disasm tr.at{background:#fff1c2;font-weight:700}
.regs{display:grid;grid-template-columns:repeat(auto-fill,minmax(150px,1fr));gap:2px 14px;max-width:900px}
footer{color:var(--muted);font-size:12px;padding:0 24px 20px}
`;

/** Click on a read in the disk map: show its partition/file attribution in the panel below the map. */
export const REPORT_JS = `
(function(){
  document.querySelectorAll('.diskmap').forEach(function(map){
    var panel = map.querySelector('.pinfo');
    map.addEventListener('click', function(ev){
      var t = ev.target;
      if (!t || !t.classList || !t.classList.contains('rd')) return;
      map.querySelectorAll('.rd.sel').forEach(function(x){ x.classList.remove('sel'); });
      var same = map.querySelectorAll('.rd[data-i="' + t.getAttribute('data-i') + '"]');
      same.forEach(function(x){ x.classList.add('sel'); });
      if (panel) panel.textContent = t.getAttribute('data-info') || '';
    });
  });
})();
`;
