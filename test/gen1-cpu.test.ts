// The Unicorn binding behind the Cpu interface: real instructions, register round trips, INT/IN/OUT/CPUID hooks.
import { describe, expect, it } from "vitest";
import { createCpu } from "../emu/cpu.ts";

describe("Cpu (Unicorn via koffi)", () => {
  it("runs real-mode code, round-trips registers and traps INT, OUT, IN and CPUID", () => {
    const ints: { n: number; ax: number; ip: number }[] = [];
    const outs: [number, number][] = [];
    const cpu = createCpu(1 << 20, {
      interrupt(n) { ints.push({ n, ax: cpu.reg("AX"), ip: cpu.reg("IP") }); cpu.setReg("BX", 0x1234); },
      portOut(port, _size, value) { outs.push([port, value]); },
      portIn(port) { return port === 0x61 ? 0x20 : 0xff; },
      cpuid() { cpu.setReg("EAX", 0xcafe); cpu.setReg("EBX", 0); cpu.setReg("ECX", 0); return true; },
    });
    try {
      // mov ax,0x0e41 ; int 10h ; mov si,bx ; mov al,0x55 ; out 0x80,al ; in al,0x61 ; mov dl,al ;
      // xor eax,eax ; cpuid ; hlt
      const code = Buffer.from([0xb8, 0x41, 0x0e, 0xcd, 0x10, 0x89, 0xde, 0xb0, 0x55, 0xe6, 0x80,
        0xe4, 0x61, 0x88, 0xc2, 0x66, 0x31, 0xc0, 0x0f, 0xa2, 0xf4]);
      cpu.write(0x7c00, code);
      cpu.setReg("CS", 0); cpu.setReg("EIP", 0x7c00); cpu.setReg("SS", 0); cpu.setReg("ESP", 0x7000);
      cpu.setReg("ESI", 0xdeadbeef);
      expect(cpu.reg("ESI")).toBe(0xdeadbeef);
      expect(cpu.reg("SI")).toBe(0xbeef);
      const r = cpu.run(0);
      expect(r.err).toBe(0);
      expect(cpu.hookError).toBeUndefined();
      expect(ints).toEqual([{ n: 0x10, ax: 0x0e41, ip: 0x7c05 }]);
      expect(cpu.reg("SI")).toBe(0x1234);
      expect(outs).toEqual([[0x80, 0x55]]);
      expect(cpu.reg("DL")).toBe(0x20);
      expect(cpu.reg("EAX")).toBe(0xcafe);
      expect(cpu.reg("EIP")).toBe(0x7c00 + code.length);   // stopped after HLT
    } finally {
      cpu.close();
    }
  });

  it("drops translated code after a host write (the chainload pitfall)", () => {
    const cpu = createCpu(1 << 20, {});
    try {
      cpu.write(0x7c00, Buffer.from([0xb8, 0x11, 0x11, 0xf4]));  // mov ax,1111h ; hlt
      cpu.setReg("CS", 0); cpu.setReg("EIP", 0x7c00);
      cpu.run(0);
      expect(cpu.reg("AX")).toBe(0x1111);
      cpu.write(0x7c00, Buffer.from([0xb8, 0x22, 0x22, 0xf4]));
      cpu.setReg("EIP", 0x7c00);
      cpu.run(0);
      expect(cpu.reg("AX")).toBe(0x2222);
    } finally {
      cpu.close();
    }
  });

  it("records a hook's exception and stops instead of running on", () => {
    const cpu = createCpu(1 << 20, { interrupt() { throw new Error("boom"); } });
    try {
      cpu.write(0x7c00, Buffer.from([0xcd, 0x13, 0xeb, 0xfe]));  // int 13h ; jmp $
      cpu.setReg("CS", 0); cpu.setReg("EIP", 0x7c00);
      cpu.run(1_000_000);
      expect(cpu.hookError?.message).toBe("boom");
    } finally {
      cpu.close();
    }
  });
});

describe("Cpu newBlock hook and time-outs", () => {
  it("reports each translated block once, before it runs; a stop there is exact and resumable", () => {
    const blocks: number[] = [];
    let stopAt = -1;
    const cpu = createCpu(1 << 20, {
      newBlock(pc) { blocks.push(pc); if (pc === stopAt) cpu.stop(); },
    });
    try {
      // 7C00: mov cx,3 ; 7C03: l: inc word [0x1000] ; dec cx ; jnz l ; 7C0A: inc word [0x1002] ; hlt
      cpu.write(0x7c00, Buffer.from([0xb9, 0x03, 0x00, 0xff, 0x06, 0x00, 0x10, 0x49, 0x75, 0xf9, 0xff, 0x06, 0x02, 0x10, 0xf4]));
      stopAt = 0x7c0a;
      cpu.setReg("CS", 0); cpu.setReg("EIP", 0x7c00);
      expect(cpu.run(0, 5_000_000).err).toBe(0);
      expect(cpu.timedOut()).toBe(false);
      expect(cpu.reg("EIP")).toBe(0x7c0a);                        // stopped before the new block ran
      expect(cpu.ram.readUInt16LE(0x1000)).toBe(3);
      expect(cpu.ram.readUInt16LE(0x1002)).toBe(0);
      stopAt = -1;
      expect(cpu.run(0, 5_000_000).err).toBe(0);                   // resumes there: the block runs once
      expect(cpu.reg("EIP")).toBe(0x7c0f);
      expect(cpu.ram.readUInt16LE(0x1002)).toBe(1);
      expect(blocks.filter((b) => b === 0x7c03).length).toBe(1);   // the loop body, translated once, ran twice more
      expect(blocks).toContain(0x7c0a);
    } finally {
      cpu.close();
    }
  });

  it("never stops a later run for an earlier run's deadline (the watchdog re-armed many times)", () => {
    const cpu = createCpu(1 << 20, {});
    try {
      // inc word [0x1000] ; hlt   — 300 short runs, each armed with a 5 ms deadline it never reaches
      cpu.write(0x7c00, Buffer.from([0xff, 0x06, 0x00, 0x10, 0xf4]));
      for (let i = 0; i < 300; i++) {
        cpu.setReg("CS", 0); cpu.setReg("EIP", 0x7c00);
        expect(cpu.run(0, 5_000).err).toBe(0);
        expect(cpu.timedOut()).toBe(false);
        expect(cpu.reg("EIP")).toBe(0x7c05);
      }
      expect(cpu.ram.readUInt16LE(0x1000)).toBe(300);
      // A spin is stopped near its deadline, not much later.
      cpu.write(0x7c00, Buffer.from([0xeb, 0xfe]));
      cpu.setReg("EIP", 0x7c00);
      const t0 = performance.now();
      cpu.run(0, 50_000);
      expect(cpu.timedOut()).toBe(true);
      expect(performance.now() - t0).toBeLessThan(3000);
    } finally {
      cpu.close();
    }
  });

  it("says when a run ended by its time-out rather than by HLT", () => {
    const cpu = createCpu(1 << 20, {});
    try {
      cpu.write(0x7c00, Buffer.from([0xeb, 0xfe]));              // jmp $
      cpu.setReg("CS", 0); cpu.setReg("EIP", 0x7c00);
      cpu.run(0, 20_000);
      expect(cpu.timedOut()).toBe(true);
      cpu.write(0x7c00, Buffer.from([0xf4]));
      cpu.setReg("EIP", 0x7c00);
      cpu.run(0, 5_000_000);
      expect(cpu.timedOut()).toBe(false);
      expect(cpu.reg("EIP")).toBe(0x7c01);
    } finally {
      cpu.close();
    }
  });
});
