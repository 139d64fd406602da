/* An empty body for a DLL made only of forwarded exports. */
#include <windows.h>
BOOL WINAPI DllMain(HINSTANCE dll, DWORD reason, LPVOID reserved) {
  (void)dll;
  (void)reason;
  (void)reserved;
  return TRUE;
}
