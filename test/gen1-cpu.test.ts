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
