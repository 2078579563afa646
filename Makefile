# amd: one binary, `amd`, plus the test programs. `make help` lists the targets.
#   make              build ./amd (CPU backend; OpenBLAS + OpenMP, MPI, parallel HDF5, libpng)
#   make test         install what is missing, build, run every test; ends with "N passed, M failed"
#   make bench        build build/benchmarks/dit_speed (also part of all); benchmarks/dit_speed.sh runs it
#   make demo         install what is missing, run the toy end-to-end job under mpirun -np 2
#   make SANITIZE=1   build with AddressSanitizer + UndefinedBehaviorSanitizer into build-san/
#   make CUDA=1       also build the CUDA backend (probed; not yet implemented, see issue 6)

CC       := mpicc
OPT      ?= -O2
CFLAGS   := -std=c11 -D_GNU_SOURCE $(OPT) -g -march=x86-64-v2 -fopenmp -Wall -Wextra -Werror -MMD -MP
LDLIBS   :=

SANITIZE ?= 0
ifeq ($(SANITIZE),1)
  BUILD  := build-san
  CFLAGS += -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
  LDFLAGS += -fsanitize=address,undefined
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

CFLAGS  += -Isrc -Iio -Impi $(HDF5_CFLAGS) -I$(OPENBLAS_INC)
LDFLAGS += -fopenmp -L$(OPENBLAS_DIR) -Wl,-rpath,$(OPENBLAS_DIR)
LDLIBS  += $(HDF5_LIBS) -lopenblas $(PNG_LIBS) -lz -lm

SRCS     := $(wildcard src/*.c) $(wildcard io/*.c) $(wildcard mpi/*.c)
OBJS     := $(SRCS:%.c=$(BUILD)/%.o)
LIB_OBJS := $(filter-out $(BUILD)/src/main.o,$(OBJS))
TEST_SRCS := $(wildcard tests/test_*.c)
TEST_BINS := $(TEST_SRCS:tests/%.c=$(BUILD)/tests/%)
BENCH_BINS := $(BUILD)/benchmarks/dit_speed

ifeq ($(SANITIZE),1)
  AMD := $(BUILD)/amd
else
  AMD := amd
endif

.PHONY: all bench setup test test-unit demo clean help deps-report
all: deps-report $(AMD) $(TEST_BINS) $(BENCH_BINS)
bench: $(BENCH_BINS)

deps-report:
	@echo "amd build ($(BUILD)):"
	@echo "  mpicc     : $(if $(shell command -v mpicc),found,MISSING (run jobs/setup.sh))"
	@echo "  HDF5      : $(if $(HDF5_LIBS),parallel (openmpi flavour),MISSING (run jobs/setup.sh))"
	@echo "  OpenBLAS  : $(if $(wildcard $(OPENBLAS_DIR)/libopenblas.so),OpenMP build in $(OPENBLAS_DIR),MISSING (run jobs/setup.sh))"
	@echo "  libpng    : $(if $(PNG_LIBS),found,MISSING (run jobs/setup.sh))"
	@echo "  CUDA      : $(if $(NVCC),nvcc found at $(NVCC); backend skipped (issue 6),not found; skipped)"

$(AMD): $(OBJS)
	@echo "  LD $@"
	@$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	@echo "  CC $<"
	@$(CC) $(CFLAGS) -c -o $@ $<

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
	@bash tests/run.sh

demo: setup
	@$(MAKE) --no-print-directory all
	@bash jobs/demo.sh

clean:
	rm -rf build build-san amd

help:
	@sed -n '1,9p' Makefile

-include $(OBJS:.o=.d) $(TEST_BINS:=.d) $(BENCH_BINS:=.d)
