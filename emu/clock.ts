// One deterministic virtual clock for the Gen1 machine: advanced only by executed work (instructions counted by the
// run loop, a cost per port access and per BIOS call, explicit waits and idle skips), never by host time. The PIT
// (Intel 8254 datasheet), the BIOS tick count at 0040:006C (IBM PC/AT TRM, INT 1Ah) and the CMOS RTC all read it.

/** PIT input clock, Hz (8254 on the PC: 14.31818 MHz / 12). */
export const PIT_HZ = 1_193_182;
/** BIOS timer ticks per day (INT 1Ah AH=00h rolls over at 1800B0h). */
export const TICKS_PER_DAY = 0x1800b0;
/** Virtual cost of one guest instruction: a 1 GHz, 1 IPC CPU. */
export const NS_PER_INSTRUCTION = 1;
/** Virtual cost of an I/O port access (an ISA bus cycle is about 1 us). */
export const NS_PER_PORT_ACCESS = 1_000;
/** Virtual cost of a BIOS service call (entry, work, IRET). */
export const NS_PER_BIOS_CALL = 5_000;
/** Time skipped when the guest polls an empty keyboard buffer or halts with interrupts on: one timer tick. */
export const NS_IDLE_SKIP = Math.round(65536 * 1e9 / PIT_HZ);

/** Power-on wall date of the virtual machine (fixed so runs are deterministic): 2024-01-01 08:00:00. */
export const POWER_ON = { year: 2024, month: 1, day: 1, hour: 8, minute: 0, second: 0 };

export class VirtualClock {
  private ns = 0;

  /** Virtual nanoseconds since power-on. */
  get now(): number { return this.ns; }

  advance(ns: number): void {
    if (ns > 0 && Number.isFinite(ns)) this.ns += ns;
  }

  advanceInstructions(n: number): void {
    this.advance(n * NS_PER_INSTRUCTION);
  }

  /** PIT input clock cycles since power-on. */
  pitCycles(): number {
    return Math.floor(this.ns * PIT_HZ / 1e9);
  }

  /** Seconds since midnight of the power-on date, as a float. */
  secondsOfDay(): number {
    return POWER_ON.hour * 3600 + POWER_ON.minute * 60 + POWER_ON.second + this.ns / 1e9;
  }

  /** BIOS tick count (18.2 Hz) since midnight, as INT 1Ah AH=00h and 0040:006C report it. */
  biosTicks(): number {
    return Math.floor(this.secondsOfDay() * PIT_HZ / 65536) % TICKS_PER_DAY;
  }

  /** Wall time for the RTC: the power-on date plus elapsed virtual time (one day is the most a boot lasts). */
  rtc(): { year: number; month: number; day: number; hour: number; minute: number; second: number } {
    let s = Math.floor(this.secondsOfDay());
    const dayCarry = Math.floor(s / 86400);
    s %= 86400;
    return {
      year: POWER_ON.year, month: POWER_ON.month, day: POWER_ON.day + dayCarry,
      hour: Math.floor(s / 3600), minute: Math.floor(s / 60) % 60, second: s % 60,
    };
  }
}
