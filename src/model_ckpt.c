/* model_ckpt.c: networks to and from checkpoint files (model_ckpt.h). */
#include "model_ckpt.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "dist.h"
#include "h5.h"
#include "ops.h"
#include "zero.h"

/* The architecture attributes of /<net>, in file order (num_params last): NARCH of every model,
 * then NTEXT of a text-mode dit only (a class-mode file is as before them; an absent one reads 0). */
enum { NARCH = 10, NTEXT = 5, NARCH_ALL = NARCH + NTEXT };
static int arch_attrs(const Model *m, CkptAttr a[NARCH_ALL]) {
  const ModelConfig *c = &m->cfg;
  CkptAttr v[NARCH_ALL] = {{"dim", c->dim},
                           {"num_classes", c->num_classes},
                           {"width", c->width},
                           {"depth", c->depth},
                           {"temb_dim", c->temb_dim},
                           {"img_channels", c->img_channels},
                           {"img_size", c->img_size},
                           {"patch", c->patch},
                           {"heads", c->heads},
                           {"text", c->text},
                           {"vocab", c->vocab},
                           {"text_width", c->text_width},
                           {"text_depth", c->text_depth},
                           {"max_text", c->max_text},
                           {"num_params", m->num_params}};
  int n = c->text ? NARCH_ALL : NARCH;
  if (!c->text) v[NARCH - 1] = v[NARCH_ALL - 1]; /* num_params right after heads */
  memcpy(a, v, sizeof(CkptAttr) * (size_t)n);
  return n;
}

/* This rank's part of the global vector `name` of n values: values from dev, which holds
 * [dev_begin, dev_begin + dev_n) of the vector (backend memory). */
static void write_vector(CkptWriter *w, const char *name, const float *dev, long dev_begin, long dev_n, long n) {
  long begin, end;
  zero_shard(n, amd_rank(), dist_size(), &begin, &end);
  CHECK(begin >= dev_begin && end <= dev_begin + dev_n,
        "checkpoint: rank %d holds values %ld..%ld of '%s' but must write %ld..%ld", amd_rank(), dev_begin,
        dev_begin + dev_n, name, begin, end);
  float *host = mallocCheck(sizeof(float) * (size_t)(end > begin ? end - begin : 1));
  ops->to_host(host, dev + (begin - dev_begin), sizeof(float) * (size_t)(end - begin));
  ckpt_write_vector(w, name, host, n, begin, end - begin);
  free(host);
}

/* One network group: its architecture, the vector `params` (values [begin, begin + n) of it in
 * dev), the moments when opt is not NULL, and the layout. */
static void write_group(CkptWriter *w, const char *name, const Model *m, const float *dev, long begin, long n,
                        const AdamW *opt) {
  CkptAttr attrs[NARCH_ALL];
  int nattrs = arch_attrs(m, attrs);
  ckpt_begin_net(w, name, m->cfg.kind, attrs, nattrs);
  write_vector(w, "params", dev, begin, n, m->num_params);
  if (opt) {
    write_vector(w, "adam_m", opt->m, opt->begin, opt->n, m->num_params);
    write_vector(w, "adam_v", opt->v, opt->begin, opt->n, m->num_params);
  }
  CkptTensor *rows = callocCheck((size_t)m->num_tensors, sizeof *rows);
  for (int i = 0; i < m->num_tensors; i++) {
    snprintf(rows[i].name, sizeof rows[i].name, "%s", m->tensors[i].name);
    rows[i].offset = m->tensors[i].offset;
    rows[i].ndim = m->tensors[i].ndim;
    memcpy(rows[i].shape, m->tensors[i].shape, sizeof rows[i].shape);
  }
  ckpt_write_layout(w, rows, m->num_tensors);
  free(rows);
  ckpt_end_net(w);
}

static void ema_name(const char *net, char *out, size_t n) { snprintf(out, n, "%s" EMA_SUFFIX, net); }

static void write_net(CkptWriter *w, const CkptNet *net) {
  const Model *m = net->model;
  write_group(w, net->name, m, m->params, m->p_begin, model_stored_n(m), net->opt);
  if (net->ema) {
    char name[CKPT_NAME_MAX + 8];
    ema_name(net->name, name, sizeof name);
    write_group(w, name, m, net->ema->w, net->ema->begin, net->ema->n, NULL);
  }
}

void model_ckpt_save(const char *run_dir, const CkptState *st, const CkptNet *nets, int nnets,
                     const char *config_text, const char *data_path, int keep) {
  CkptWriter w;
  ckpt_begin(&w, run_dir, st, config_text, data_path);
  for (int i = 0; i < nnets; i++) write_net(&w, &nets[i]);
  ckpt_commit(&w, keep);
}

/* Values [begin, begin + n) of the global vector `name` (num_params values) into dev. */
static void read_vector(hid_t f, const char *path, const CkptNet *net, const char *name, float *dev, long begin,
                        long n) {
  float *host = mallocCheck(sizeof(float) * (size_t)(n ? n : 1));
  ckpt_read_vector(f, path, net->name, name, net->model->num_params, begin, n, host);
  ops->to_device(dev, host, sizeof(float) * (size_t)n);
  free(host);
}

/* The kind and architecture of /<name> must be those of m. */
static void check_arch(hid_t f, const char *path, const char *name, const Model *m) {
  char *kind = ckpt_net_kind(f, path, name);
  if (strcmp(kind, m->cfg.kind) != 0) amd_fatal("'%s': /%s is a '%s' model, expected '%s'", path, name, kind, m->cfg.kind);
  free(kind);
  long long text = ckpt_net_attr(f, name, "text", 0);
  if (text != m->cfg.text)
    amd_fatal("'%s': /%s is a %s-conditioned model (text = %lld) but this run's model is %s-conditioned "
              "(model.text=%d)", path, name, text ? "caption" : "class", text, m->cfg.text ? "caption" : "class",
              m->cfg.text);
  CkptAttr want[NARCH_ALL];
  int n = arch_attrs(m, want);
  for (int k = 0; k < n; k++) {
    long long have = ckpt_net_attr(f, name, want[k].key, 0);
    if (have != want[k].value)
      amd_fatal("'%s': /%s has %s = %lld but this run's model has %lld (architecture mismatch)", path, name,
                want[k].key, have, want[k].value);
  }
}

static void load_net(hid_t f, const char *path, const CkptNet *net) {
  const Model *m = net->model;
  check_arch(f, path, net->name, m);
  read_vector(f, path, net, "params", m->params, m->p_begin, model_stored_n(m));
  if (net->opt) {
    CHECK(net->opt->begin >= 0 && net->opt->begin + net->opt->n <= m->num_params,
          "checkpoint: Adam moments of values %ld..%ld do not fit /%s of %ld", net->opt->begin,
          net->opt->begin + net->opt->n, net->name, m->num_params);
    read_vector(f, path, net, "adam_m", net->opt->m, net->opt->begin, net->opt->n);
    read_vector(f, path, net, "adam_v", net->opt->v, net->opt->begin, net->opt->n);
  }
  if (net->ema) {
    const Ema *e = net->ema;
    CHECK(e->begin >= 0 && e->begin + e->n <= m->num_params,
          "checkpoint: an EMA of values %ld..%ld does not fit /%s of %ld", e->begin, e->begin + e->n, net->name,
          m->num_params);
    char name[CKPT_NAME_MAX + 8];
    ema_name(net->name, name, sizeof name);
    if (h5_exists(f, name)) {
      check_arch(f, path, name, m);
      CkptNet ema_net = {name, net->model, NULL, NULL};
      read_vector(f, path, &ema_net, "params", e->w, e->begin, e->n);
    } else {
      amd_log("'%s' holds no /%s (written before EMA weights, or with ema.decay=0): the EMA of %s starts from its "
              "weights\n", path, name, net->name);
      ema_copy_from_part(net->ema, model_stored(m, e->begin, e->n));
    }
  }
}

void model_ckpt_load(const char *path, CkptState *st, const CkptNet *nets, int nnets) {
  hid_t f = ckpt_open(path);
  ckpt_read_state(f, path, st);
  for (int i = 0; i < nnets; i++) load_net(f, path, &nets[i]);
  ckpt_close(f);
}

void model_ckpt_load_params(const char *path, const char *net, Model *m) {
  CkptState st;
  CkptNet n = {net, m, NULL, NULL};
  model_ckpt_load(path, &st, &n, 1);
}

void model_ckpt_config(const char *path, const char *net, ModelConfig *c) {
  hid_t f = ckpt_open(path);
  char *kind = ckpt_net_kind(f, path, net);
  memset(c, 0, sizeof *c);
  snprintf(c->kind, sizeof c->kind, "%s", kind);
  free(kind);
  c->dim = (int)ckpt_net_attr(f, net, "dim", 1);
  c->num_classes = (int)ckpt_net_attr(f, net, "num_classes", 1);
  c->width = (int)ckpt_net_attr(f, net, "width", 1);
  c->depth = (int)ckpt_net_attr(f, net, "depth", 1);
  c->temb_dim = (int)ckpt_net_attr(f, net, "temb_dim", 1);
  c->img_channels = (int)ckpt_net_attr(f, net, "img_channels", 0);
  c->img_size = (int)ckpt_net_attr(f, net, "img_size", 0);
  c->patch = (int)ckpt_net_attr(f, net, "patch", 0);
  c->heads = (int)ckpt_net_attr(f, net, "heads", 0);
  c->text = (int)ckpt_net_attr(f, net, "text", 0); /* absent (class mode, older files): 0 */
  c->vocab = (int)ckpt_net_attr(f, net, "vocab", 0);
  c->text_width = (int)ckpt_net_attr(f, net, "text_width", 0);
  c->text_depth = (int)ckpt_net_attr(f, net, "text_depth", 0);
  c->max_text = (int)ckpt_net_attr(f, net, "max_text", 0);
  ckpt_close(f);
  model_config_check(c);
}
