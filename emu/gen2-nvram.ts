// The NVRAM a Hyper-V Gen2 VM starts with: the Secure Boot state and key databases of the chosen template (UEFI
// 2.10 3.3 globally defined variables, 32.6 image security database), read-only to the guest like mu_msvm's.
import { ATTR, type VariableStore } from "../firmware-stubs/uefi-nvram.ts";
import { GUID } from "../firmware-stubs/uefi-guid.ts";
import { signatureListBytes, type SecureBootTemplate } from "../firmware-stubs/secureboot.ts";

const BS_RT = ATTR.BOOTSERVICE_ACCESS | ATTR.RUNTIME_ACCESS;
const AUTH_NV = ATTR.NON_VOLATILE | BS_RT | ATTR.TIME_BASED_AUTHENTICATED_WRITE_ACCESS;

/** Put the platform variables for `template` into the store (firmware writes: no checks, not logged). */
export function prepareNvram(nvram: VariableStore, template: SecureBootTemplate): void {
  const G = GUID.EFI_GLOBAL_VARIABLE;
  const on = template.mode !== "off";
  const fixed: [string, string, number, Buffer][] = [
    ["SecureBoot", G, BS_RT, Buffer.from([on ? 1 : 0])],
    ["SetupMode", G, BS_RT, Buffer.from([0])],
    ["AuditMode", G, BS_RT, Buffer.from([0])],
    ["DeployedMode", G, BS_RT, Buffer.from([0])],
    ["OsIndicationsSupported", G, BS_RT, Buffer.alloc(8)],
    ["PlatformLangCodes", G, BS_RT, Buffer.from("en-US\0", "latin1")],
    ["PlatformLang", G, ATTR.NON_VOLATILE | BS_RT, Buffer.from("en-US\0", "latin1")],
  ];
  for (const [name, guid, attrs, data] of fixed) {
    if (name === "PlatformLang" && nvram.get(name, guid)) continue;
    nvram.put(name, guid, attrs, data);
    if (name !== "PlatformLang") nvram.setReadOnly(name, guid);
  }
  const dbs: [string, string, "PK" | "KEK" | "db" | "dbx"][] = [["PK", G, "PK"], ["KEK", G, "KEK"],
    ["db", GUID.IMAGE_SECURITY_DATABASE, "db"], ["dbx", GUID.IMAGE_SECURITY_DATABASE, "dbx"]];
  for (const [name, guid, v] of dbs) {
    const data = signatureListBytes(template, v);
    if (data.length) nvram.put(name, guid, AUTH_NV, data);
    else nvram.remove(name, guid);
    nvram.setReadOnly(name, guid);
  }
}
