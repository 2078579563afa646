# amd: one binary, `amd`, plus the test programs. `make help` lists the targets.
#   make              build ./amd (CPU backend; OpenBLAS + OpenMP, MPI, parallel HDF5, libpng)
#   make test         install what is missing, build, run every test; ends with "N passed, M failed"
#   make bench        build build/benchmarks/dit_speed (also part of all); benchmarks/dit_speed.sh runs it
#   make demo         install what is missing, run the toy end-to-end job under mpirun -np 2
#   make SANITIZE=1   build with AddressSanitizer + UndefinedBehaviorSanitizer into build-san/
#   make CUDA=1       the CUDA backend build: build-cuda/amd and build-cuda/tests/test_cuda (nvcc, cuBLAS)
#   make CUDA_EMU=1   the same cuda/*.cu on the CPU emulator of tests/cuda_emu (g++): build-cuda-emu/

CC       := mpicc
OPT      ?= -O2
# -fno-math-errno: sqrtf and the other math functions need not set errno (nothing here reads it
# after them), so a loop with sqrtf vectorizes (AdamW's was scalar, 3 times slower); the results are
# the same IEEE operations. -fvect-cost-model=cheap: -O2's default (very-cheap) vectorizes no loop
# that needs a run-time check that its arrays do not overlap, which left the element-wise ops
# (EMA, axpy, the Euler step) scalar; the vector lanes do each element's operations unchanged.
# Neither changes a bit of any result; `benchmarks/scalar_loops.sh` lists what stays scalar.
CFLAGS   := -std=c11 -D_GNU_SOURCE $(OPT) -g -march=x86-64-v2 -fopenmp -fno-math-errno -fvect-cost-model=cheap -Wall -Wextra -Werror -MMD -MP
LDLIBS   :=

SANITIZE ?= 0
CUDA     ?= 0
CUDA_EMU ?= 0
ifneq ($(filter-out 0 1,$(words $(filter 1,$(SANITIZE) $(CUDA) $(CUDA_EMU)))),)
  $(error SANITIZE=1, CUDA=1 and CUDA_EMU=1 do not combine: build them one at a time)
endif
ifeq ($(SANITIZE),1)
  BUILD  := build-san
  CFLAGS += -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
  LDFLAGS += -fsanitize=address,undefined
else ifeq ($(CUDA),1)
  BUILD  := build-cuda
else ifeq ($(CUDA_EMU),1)
  BUILD  := build-cuda-emu
else
  BUILD  := build
endif

# --- dependencies, probed so the build says what it found -------------------------------------
HDF5_CFLAGS := $(shell pkg-config --cflags hdf5-openmpi 2>/dev/null)
HDF5_LIBS   := $(shell pkg-config --libs hdf5-openmpi 2>/dev/null)
OPENBLAS_DIR := /usr/lib/x86_64-linux-gnu/openblas-openmp
OPENBLAS_INC := /usr/include/x86_64-linux-gnu/openblas-openmp
PNG_LIBS    := $(shell pkg-config --libs libpng 2>/dev/null)
NVCC        := $(shell command -v nvcc 2>/dev/null || ls /usr/local/cuda/bin/nvcc 2>/dev/null)
CUDA_HOME   ?= $(if $(NVCC),$(patsubst %/bin/nvcc,%,$(realpath $(NVCC))),/usr/local/cuda)
CUDA_VER    := $(if $(NVCC),$(shell $(NVCC) --version 2>/dev/null | sed -n 's/.*release \([0-9.]*\),.*/\1/p'))

CFLAGS  += -Icore -Isrc -Iio -Impi $(HDF5_CFLAGS) -I$(OPENBLAS_INC)
LDFLAGS += -fopenmp -L$(OPENBLAS_DIR) -Wl,-rpath,$(OPENBLAS_DIR)
LDLIBS  += $(HDF5_LIBS) -lopenblas $(PNG_LIBS) -lz -lm

SRCS     := $(wildcard core/*.c) $(wildcard src/*.c) $(wildcard io/*.c) $(wildcard mpi/*.c)
OBJS     := $(SRCS:%.c=$(BUILD)/%.o)
TEST_SRCS := $(wildcard tests/test_*.c)
TEST_BINS := $(TEST_SRCS:tests/%.c=$(BUILD)/tests/%)
BENCH_BINS := $(BUILD)/benchmarks/dit_speed $(BUILD)/benchmarks/gemm_split $(BUILD)/benchmarks/gemm_bf16

# The CUDA builds: cuda/*.cu by nvcc into build-cuda/, linked with cuBLAS and the runtime, or (CUDA_EMU)
# on the CPU emulator into build-cuda-emu/. Only the C files that mention AMD_CUDA (backend
# selection, the CUDA test) are compiled again with it defined; every other object is the CPU
# build's own (same flags), so these builds stay cheap. Their tests are the ones that use the device
# (test_cuda); the rest run in the CPU builds.
ifneq ($(filter 1,$(CUDA) $(CUDA_EMU)),)
  CUDA_C_SRCS := $(shell grep -l AMD_CUDA $(SRCS))
  OBJS      := $(filter-out $(CUDA_C_SRCS:%.c=build/%.o),$(SRCS:%.c=build/%.o)) $(CUDA_C_SRCS:%.c=$(BUILD)/%.o)
  CU_SRCS   := $(wildcard cuda/*.cu)
  CU_OBJS   := $(CU_SRCS:%.cu=$(BUILD)/%.o)
  TEST_BINS := $(BUILD)/tests/test_cuda
  CPU_CFLAGS := $(CFLAGS)
  CFLAGS    += -DAMD_CUDA -Icuda
endif
ifeq ($(CUDA),1)
  ifeq ($(NVCC),)
    $(error CUDA=1: nvcc not found (PATH or /usr/local/cuda/bin); install the CUDA toolkit)
  endif
  CUDA_ARCH ?= -gencode arch=compute_80,code=sm_80 -gencode arch=compute_90,code=sm_90
  NVCCFLAGS := -O2 -g $(CUDA_ARCH) -Xcompiler -Wall,-Wextra,-Werror -Werror all-warnings -MMD -MP -Icore -Isrc -Icuda
  LDFLAGS   += -L$(CUDA_HOME)/lib64 -Wl,-rpath,$(CUDA_HOME)/lib64
  LDLIBS    += -lcublas -lcudart -lstdc++
endif
# The emulator build: launches rewritten by tests/cuda_emu/launch_rewrite.py, compiled by g++ against
# the CPU emulator's cuda_runtime.h and cublas_v2.h (tests/cuda_emu), so CI, which has no GPU, runs
# the kernels through test_cuda and the scenarios (and dit_speed, for benchmarks/gpu_speed.sh DRY=1).
# Not a GPU check: see tests/cuda_emu/cuda_runtime.h for what it does and does not emulate.
ifeq ($(CUDA_EMU),1)
  CU_OBJS   += $(BUILD)/tests/cuda_emu/emu_runtime.o
  TEST_BINS += $(BUILD)/tests/emu_selftest
  CXXFLAGS  := -std=c++17 -O2 -g -march=x86-64-v2 -Wall -Wextra -Werror -MMD -MP -Itests/cuda_emu -Icore -Isrc -Icuda
  LDLIBS    += -lstdc++
endif
OBJS += $(CU_OBJS)
# The commit the binary is built from, for the provenance of every file it writes (src/origin.h):
# a generated source rewritten only when `git describe` changes, so a new commit recompiles one
# file and relinks, and an unchanged one rebuilds nothing.
AMD_COMMIT := $(shell git describe --always --dirty 2>/dev/null || echo unknown)
COMMIT_OBJ := $(BUILD)/gen/commit.o
OBJS += $(COMMIT_OBJ)
# src/ops_cpu.c a second and a third time, for AVX2 and AVX-512 (the tables ops_cpu_avx2 and
# ops_cpu_avx512; src/backend.c picks the widest this processor has at run time, AMD_CPU_ISA
# chooses): the CPU build's objects in the CUDA builds, as the other C files. Neither enables FMA
# (-mavx512f has its own FMA instructions, but ISO C mode keeps -ffp-contract=off: see ops_cpu.c).
CPU_ISA_DIR  := $(if $(filter 1,$(CUDA) $(CUDA_EMU)),build,$(BUILD))/src
CPU_AVX2_OBJ := $(CPU_ISA_DIR)/ops_cpu_avx2.o
CPU_AVX512_OBJ := $(CPU_ISA_DIR)/ops_cpu_avx512.o
OBJS += $(CPU_AVX2_OBJ) $(CPU_AVX512_OBJ)
LIB_OBJS := $(filter-out %/src/main.o,$(OBJS))

# the compiler flags of each object directory, rewritten only when they change (see the rules below):
# FLAGS_STAMP for $(BUILD)/, CPU_FLAGS_STAMP for the CPU objects, which the CUDA builds take from
# build/ (compiled there with CPU_CFLAGS, the CPU build's own CFLAGS, so both write the same text)
FLAGS_STAMP := $(BUILD)/gen/flags
ifneq ($(filter 1,$(CUDA) $(CUDA_EMU)),)
  CPU_FLAGS_STAMP := build/gen/flags
  FLAGS_TEXT = $(CFLAGS) | $(NVCCFLAGS) | $(CXXFLAGS)
else
  CPU_FLAGS_STAMP := $(FLAGS_STAMP)
  FLAGS_TEXT = $(CFLAGS)
endif

ifeq ($(BUILD),build)
  AMD := amd
else
  AMD := $(BUILD)/amd
endif

.PHONY: all bench setup test test-unit demo clean help deps-report FORCE
all: deps-report $(AMD) $(TEST_BINS) $(BENCH_BINS)
bench: $(BENCH_BINS)

deps-report:
	@echo "amd build ($(BUILD)):"
	@echo "  mpicc     : $(if $(shell command -v mpicc),found,MISSING (run jobs/setup.sh))"
	@echo "  HDF5      : $(if $(HDF5_LIBS),parallel (openmpi flavour),MISSING (run jobs/setup.sh))"
	@echo "  OpenBLAS  : $(if $(wildcard $(OPENBLAS_DIR)/libopenblas.so),OpenMP build in $(OPENBLAS_DIR),MISSING (run jobs/setup.sh))"
	@echo "  libpng    : $(if $(PNG_LIBS),found,MISSING (run jobs/setup.sh))"
	@echo "  CUDA      : $(if $(NVCC),nvcc $(CUDA_VER) at $(NVCC); $(if $(filter 1,$(CUDA)),building the CUDA backend into build-cuda/,backend not in this build (make CUDA=1 builds build-cuda/amd)),nvcc not found; CUDA backend skipped)"

$(AMD): $(OBJS)
	@echo "  LD $@"
	@$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/%.o: %.c $(FLAGS_STAMP)
	@mkdir -p $(dir $@)
	@echo "  CC $<"
	@$(CC) $(CFLAGS) -c -o $@ $<

$(CPU_AVX2_OBJ): src/ops_cpu.c $(CPU_FLAGS_STAMP)
	@mkdir -p $(dir $@)
	@echo "  CC $< (AVX2)"
	@$(CC) $(if $(CPU_CFLAGS),$(CPU_CFLAGS),$(CFLAGS)) -mavx2 -DOPS_CPU_AVX2 -c -o $@ $<

$(CPU_AVX512_OBJ): src/ops_cpu.c $(CPU_FLAGS_STAMP)
	@mkdir -p $(dir $@)
	@echo "  CC $< (AVX-512)"
	@$(CC) $(if $(CPU_CFLAGS),$(CPU_CFLAGS),$(CFLAGS)) -mavx512f -mprefer-vector-width=512 -DOPS_CPU_AVX512 -c -o $@ $<

# a changed flag recompiles every object it compiles (the .d files record sources and headers, not
# flags); a stamp's time changes only with its text, so an unchanged build rebuilds nothing
define write_stamp
	@mkdir -p $(dir $@)
	@echo '$(1)' >$@.new
	@if cmp -s $@.new $@; then rm -f $@.new; else mv $@.new $@; fi
endef
$(FLAGS_STAMP): FORCE
	$(call write_stamp,$(FLAGS_TEXT))
ifneq ($(CPU_FLAGS_STAMP),$(FLAGS_STAMP))
$(CPU_FLAGS_STAMP): FORCE
	$(call write_stamp,$(CPU_CFLAGS))
endif

$(BUILD)/gen/commit.c: FORCE
	@mkdir -p $(dir $@)
	@echo 'const char amd_commit[] = "$(AMD_COMMIT)";' >$@.new
	@if cmp -s $@.new $@; then rm -f $@.new; else mv $@.new $@; echo "  commit $(AMD_COMMIT)"; fi

$(COMMIT_OBJ): $(BUILD)/gen/commit.c
	@echo "  CC $<"
	@$(CC) $(CFLAGS) -c -o $@ $<

ifneq ($(filter 1,$(CUDA) $(CUDA_EMU)),)
build/%.o: %.c $(CPU_FLAGS_STAMP)
	@mkdir -p $(dir $@)
	@echo "  CC $<"
	@$(CC) $(CPU_CFLAGS) -c -o $@ $<
endif

ifeq ($(CUDA),1)
$(BUILD)/cuda/%.o: cuda/%.cu $(FLAGS_STAMP)
	@mkdir -p $(dir $@)
	@echo "  NVCC $<"
	@$(NVCC) $(NVCCFLAGS) -c -o $@ $<
endif

ifeq ($(CUDA_EMU),1)
# the rewritten sources are kept (compiler messages name the .cu lines through #line)
.SECONDARY: $(CU_SRCS:%.cu=$(BUILD)/%.cpp) $(BUILD)/tests/cuda_emu/emu_selftest.cpp
$(BUILD)/%.cpp: %.cu tests/cuda_emu/launch_rewrite.py
	@mkdir -p $(dir $@)
	@python3 tests/cuda_emu/launch_rewrite.py $< $@

$(BUILD)/cuda/%.o: $(BUILD)/cuda/%.cpp $(FLAGS_STAMP)
	@echo "  CXX $< (CUDA emulator)"
	@g++ $(CXXFLAGS) -c -o $@ $<

$(BUILD)/tests/cuda_emu/%.o: tests/cuda_emu/%.cpp $(FLAGS_STAMP)
	@mkdir -p $(dir $@)
	@echo "  CXX $<"
	@g++ $(CXXFLAGS) -c -o $@ $<

$(BUILD)/tests/emu_selftest: $(BUILD)/tests/cuda_emu/emu_selftest.cpp $(BUILD)/tests/cuda_emu/emu_runtime.o
	@echo "  CXX $< (CUDA emulator)"
	@g++ $(CXXFLAGS) -o $@ $(filter %.cpp %.o,$^)
endif

$(BUILD)/tests/%: tests/%.c $(LIB_OBJS)
	@mkdir -p $(dir $@)
	@echo "  LD $@"
	@$(CC) $(CFLAGS) -Itests $(LDFLAGS) -o $@ $< $(LIB_OBJS) $(LDLIBS)

$(BUILD)/benchmarks/%: benchmarks/%.c $(LIB_OBJS)
	@mkdir -p $(dir $@)
	@echo "  LD $@"
	@$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< $(LIB_OBJS) $(LDLIBS)

setup:
	@bash jobs/setup.sh

test: setup
	@$(MAKE) --no-print-directory all
	@$(MAKE) --no-print-directory SANITIZE=1 all
	@$(if $(NVCC),$(MAKE) --no-print-directory CUDA=1 all,echo "CUDA: nvcc not found, the CUDA build and its tests are skipped")
	@$(MAKE) --no-print-directory CUDA_EMU=1 all
	@bash tests/run.sh

demo: setup
	@$(MAKE) --no-print-directory all
	@bash jobs/demo.sh

clean:
	rm -rf build build-san build-cuda build-cuda-emu amd

help:
	@sed -n '1,9p' Makefile

-include $(OBJS:.o=.d) $(TEST_BINS:=.d) $(CU_OBJS:.o=.d) $(BENCH_BINS:=.d)
