// Why a run ended: every Gen1 run stops for exactly one of these reasons, with a human detail line.

export type StopReason =
  | "handoff"             // control passed to a kernel / OS loader (Linux boot protocol detected)
  | "halted"              // HLT with interrupts off, or an idle loop nothing can end
  | "waiting-for-key"     // a prompt waits for keyboard input that will never come
  | "int18-return"        // boot code gave up with INT 18h (boot failure / try next device)
  | "int19-return"        // boot code asked the firmware to reboot with INT 19h
  | "no-boot-device"      // the firmware found nothing bootable (no 55AA on any device)
  | "disk-not-attachable" // the disk cannot be attached to the Gen1 IDE controller at all
  | "cpu-exception"       // a CPU exception (#UD, #GP, #PF, ...) or a jump into unmapped memory
  | "triple-fault"        // a fault while handling a fault: the CPU resets
  | "budget-instructions" // the instruction budget ran out
  | "budget-time"         // the host wall-time budget ran out
  | "internal-error";     // bootgate itself failed (a bug, or the emulator library misbehaved)

export interface Stop {
  reason: StopReason;
  detail: string;
  cs?: number;
  ip?: number;
}

/** Budget stops and internal errors say nothing about the image: they make a verdict inconclusive. */
export function isInconclusive(r: StopReason): boolean {
  return r === "handoff" || r === "budget-instructions" || r === "budget-time" || r === "internal-error";
}
