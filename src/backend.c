/* backend.c: picks the op table for `device = auto | cpu | cuda`.
 * The CUDA backend is not built yet (issue 6): `device=cuda` is then a clear error, never a
 * silent fallback; `auto` says which backend it chose. */
#include <string.h>

#include "common.h"
#include "ops.h"

void ops_select(const char *device) {
  if (strcmp(device, "cpu") == 0 || strcmp(device, "auto") == 0) {
    ops = &ops_cpu;
    return;
  }
  if (strcmp(device, "cuda") == 0)
    amd_usage_error("device=cuda: this amd was built without the CUDA backend (build with `make CUDA=1` "
                    "on a machine with the CUDA toolkit), use device=cpu or device=auto");
  amd_usage_error("device='%s': expected auto, cpu or cuda", device);
}
