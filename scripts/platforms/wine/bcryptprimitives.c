/* ProcessPrng, which Rust's std imports from bcryptprimitives.dll (Windows 10+) and Wine 8 does
 * not provide: filled from the system RNG through bcrypt's BCryptGenRandom. Test scaffolding for
 * running the Windows build under Wine; a real Windows has the genuine DLL. */
#include <windows.h>

typedef LONG(WINAPI *gen_random_fn)(void *, unsigned char *, ULONG, ULONG);
#define USE_SYSTEM_PREFERRED_RNG 0x00000002

__declspec(dllexport) BOOL WINAPI ProcessPrng(unsigned char *data, SIZE_T len) {
  static gen_random_fn gen_random;
  if (!gen_random) {
    HMODULE bcrypt = LoadLibraryA("bcrypt.dll");
    if (!bcrypt) return FALSE;
    gen_random = (gen_random_fn)(void *)GetProcAddress(bcrypt, "BCryptGenRandom");
    if (!gen_random) return FALSE;
  }
  while (len > 0) {
    ULONG chunk = len > 0x10000000 ? 0x10000000 : (ULONG)len;
    if (gen_random(NULL, data, chunk, USE_SYSTEM_PREFERRED_RNG) != 0) return FALSE;
    data += chunk;
    len -= chunk;
  }
  return TRUE;
}
