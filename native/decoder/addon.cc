// Node glue for the C reference decoder (hpxdec.c): node-addon-api, loaded only by lib/native.ts.
//   decodeHpd(bytes)  -> every event of an .hpd held in memory, plus the problems met (tests)
//   scanHpd(path)     -> streams a file through the decoder and sums it up (the read speed limit)
//   decodeBlockInto(...) -> one block into an EventBatch's columns (every reader's decoding, when built)
//   applyRun(...)     -> LiveHeap.applyRun's per-event update (kernels.c), when built
//   splitRun(...)     -> HalfSplit.event's split of the draws (kernels.c)
//   tallyRun(...)     -> EventTally.add's counts (kernels.c), when built
//   crc32(bytes, crc) -> the decoder's own CRC-32, slicing by 8 (tests compare it with zlib's)
//   blockCrc32        -> which CRC-32 block validation uses: "zlib" or "slicing-by-8"
#include <napi.h>

#include <dlfcn.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

extern "C" {
#include "hpxdec.h"
#include "kernels.h"
}

namespace {

// Block checksums: the zlib inside the Node binary when it exports crc32_z (Node's own builds
// do; it is what node:zlib's crc32, and so the TypeScript reader, uses), after checking it on
// the standard test vector. Slicing by 8 runs at about half its speed here, which made the
// reference decoder slower than the TypeScript one at validating blocks and hid how their
// decoding compares.
using ZlibCrc32 = unsigned long (*)(unsigned long, const unsigned char*, size_t);
ZlibCrc32 zlib_crc32_z = nullptr;

uint32_t ZlibBlockCrc32(uint32_t crc, const uint8_t* p, size_t n) {
  return static_cast<uint32_t>(zlib_crc32_z(crc, p, n));
}

const char* UseFastestCrc32() {
  void* sym = dlsym(RTLD_DEFAULT, "crc32_z");
  if (sym) {
    ZlibCrc32 f = reinterpret_cast<ZlibCrc32>(sym);
    const unsigned char check[] = "123456789";
    if (f(0, check, 9) == 0xcbf43926ul) {
      zlib_crc32_z = f;
      hpxdec_set_block_crc32(ZlibBlockCrc32);
      return "zlib";
    }
  }
  hpxdec_set_block_crc32(nullptr);
  return "slicing-by-8";
}

struct Problem {
  int kind;
  size_t offset;
  uint32_t index;
  std::string message;
};

// At most this many problems are kept (a file of garbage has one per resynchronisation); the
// rest are counted. Keeps the vector's growth far from anything that could fail.
constexpr size_t kMaxProblems = 10000;
struct Problems {
  std::vector<Problem> list;
  double dropped = 0;
  void Add(Problem p) {
    if (list.size() < kMaxProblems) list.push_back(std::move(p));
    else dropped++;
  }
};

void CollectProblem(void* ctx, int kind, size_t offset, uint32_t index, const char* message) {
  static_cast<Problems*>(ctx)->Add(Problem{kind, offset, index, message});
}

// Growable columns backed by malloc (freed by the owner).
struct Columns {
  hpxdec_events ev{};
  ~Columns() {
    free(ev.op);
    free(ev.time_us);
    free(ev.trace);
    free(ev.size);
  }
  bool Reserve(size_t more) {
    if (ev.length + more <= ev.capacity) return true;
    size_t cap = ev.capacity ? ev.capacity : 1024;
    while (cap < ev.length + more) cap *= 2;
    void* op = realloc(ev.op, cap);
    if (!op) return false;
    ev.op = static_cast<uint8_t*>(op);
    void* t = realloc(ev.time_us, cap * sizeof(double));
    if (!t) return false;
    ev.time_us = static_cast<double*>(t);
    void* tr = realloc(ev.trace, cap * sizeof(uint32_t));
    if (!tr) return false;
    ev.trace = static_cast<uint32_t*>(tr);
    void* s = realloc(ev.size, cap * sizeof(double));
    if (!s) return false;
    ev.size = static_cast<double*>(s);
    ev.capacity = cap;
    return true;
  }
};

Napi::Value Fail(Napi::Env env, const std::string& message) {
  Napi::Error::New(env, message).ThrowAsJavaScriptException();
  return env.Undefined();
}

Napi::Array ProblemsToJs(Napi::Env env, const Problems& all) {
  const std::vector<Problem>& problems = all.list;
  Napi::Array out = Napi::Array::New(env, problems.size());
  for (size_t i = 0; i < problems.size(); i++) {
    const Problem& p = problems[i];
    Napi::Object o = Napi::Object::New(env);
    o.Set("kind", p.kind == HPXDEC_PROBLEM_TRUNCATED ? "truncated" : p.kind == HPXDEC_PROBLEM_CORRUPT ? "corrupt" : "event");
    o.Set("offset", Napi::Number::New(env, static_cast<double>(p.offset)));
    o.Set("index", Napi::Number::New(env, p.index));
    o.Set("message", p.message);
    out.Set(static_cast<uint32_t>(i), o);
  }
  return out;
}

// Room to ask for before decoding a block: its count, unless the payload cannot hold that many
// events (HPXDEC_MIN_EVENT_BYTES each at least: 2), in which case DecodeOneBlock rejects the block without
// decoding it and no memory is needed. A count field never sizes an allocation by itself.
size_t PlausibleCount(const hpxdec_block& b) {
  return static_cast<uint64_t>(b.count) * HPXDEC_MIN_EVENT_BYTES > b.length ? 0 : b.count;
}

// Decode one block the way V2Profile.batches() does: the count sanity check, then the events;
// a block that fails is reported (kind "event") and contributes nothing.
bool DecodeOneBlock(const hpxdec_block& b, hpxdec_events* ev, Problems* problems, int* saw_end) {
  if (static_cast<uint64_t>(b.count) * HPXDEC_MIN_EVENT_BYTES > b.length) {
    problems->Add(Problem{0, b.offset, b.index, "block says more events than its payload can hold"});
    return false;
  }
  size_t err_at = 0;
  const char* err_msg = nullptr;
  if (hpxdec_decode_block(b.payload, b.length, b.count, b.time_us, ev, saw_end, &err_at, &err_msg) != 0) {
    problems->Add(Problem{0, b.offset + HPXDEC_BLOCK_HEADER_SIZE + err_at, b.index, err_msg});
    return false;
  }
  return true;
}

Napi::Value DecodeHpd(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsTypedArray()) return Fail(env, "decodeHpd: expected a Buffer or Uint8Array");
  Napi::Uint8Array bytes = info[0].As<Napi::Uint8Array>();
  const uint8_t* data = bytes.Data();
  size_t size = bytes.ByteLength();
  const char* err_msg = nullptr;
  size_t err_at = 0;
  long long start = hpxdec_check_hpd_header(data, size, &err_msg, &err_at);
  if (start < 0) return Fail(env, std::string(err_msg) + " at byte " + std::to_string(err_at));

  Problems problems;
  Columns cols;
  hpxdec_walker w;
  hpxdec_walker_init(&w, data, size, static_cast<size_t>(start), CollectProblem, &problems);
  hpxdec_block b;
  int saw_end = 0;
  uint32_t blocks = 0;
  while (hpxdec_next_block(&w, &b)) {
    blocks++;
    if (!cols.Reserve(PlausibleCount(b))) return Fail(env, "decodeHpd: out of memory");
    DecodeOneBlock(b, &cols.ev, &problems, &saw_end);
    if (saw_end) break;
  }
  size_t n = cols.ev.length;
  Napi::Object out = Napi::Object::New(env);
  Napi::Uint8Array op = Napi::Uint8Array::New(env, n);
  Napi::Float64Array time_us = Napi::Float64Array::New(env, n);
  Napi::Uint32Array trace = Napi::Uint32Array::New(env, n);
  Napi::Float64Array sz = Napi::Float64Array::New(env, n);
  if (n > 0) {
    memcpy(op.Data(), cols.ev.op, n);
    memcpy(time_us.Data(), cols.ev.time_us, n * sizeof(double));
    memcpy(trace.Data(), cols.ev.trace, n * sizeof(uint32_t));
    memcpy(sz.Data(), cols.ev.size, n * sizeof(double));
  }
  out.Set("length", Napi::Number::New(env, static_cast<double>(n)));
  out.Set("op", op);
  out.Set("timeUs", time_us);
  out.Set("trace", trace);
  out.Set("size", sz);
  out.Set("blocks", Napi::Number::New(env, blocks));
  out.Set("complete", Napi::Boolean::New(env, saw_end != 0));
  out.Set("problems", ProblemsToJs(env, problems));
  out.Set("problemsDropped", Napi::Number::New(env, problems.dropped));
  return out;
}

// Per-trace live sampled bytes (what a history pass keeps, unweighted). Only the totals are
// reported, so the per-trace sums are the work being measured, not a result: ids below
// kDenseTraces get their own slot, larger ones (a hostile or damaged file can claim 2^32-1)
// share hashed slots. Memory is malloc'd and checked: nothing here can throw (the addon is
// built without C++ exceptions, where a failed std::vector growth aborts the process).
struct LiveByTrace {
  static constexpr size_t kDenseTraces = size_t{1} << 22;
  double* bytes = nullptr;
  size_t slots = 0;
  double total = 0;
  double peak = 0;
  ~LiveByTrace() { free(bytes); }
  // op is HPXDEC_OP_ALLOC (0) or HPXDEC_OP_FREE (1): the sign comes from it, not from a branch
  // (allocations and frees interleave unpredictably). False when memory ran out.
  bool Apply(uint8_t op, uint32_t trace, double size) {
    size_t slot = trace < kDenseTraces ? trace : kDenseTraces - 1 - (trace * 2654435761u) % (kDenseTraces / 2);
    if (slot >= slots && !Grow(slot)) return false;
    double delta = (1 - 2 * static_cast<int>(op)) * size;
    bytes[slot] += delta;
    total += delta;
    peak = total > peak ? total : peak;
    return true;
  }
  bool Grow(size_t slot) {
    size_t want = slot + 1 + slot / 2;
    if (want > kDenseTraces) want = kDenseTraces;
    void* p = realloc(bytes, want * sizeof(double));
    if (!p) return false;
    bytes = static_cast<double*>(p);
    for (size_t i = slots; i < want; i++) bytes[i] = 0;
    slots = want;
    return true;
  }
};

Napi::Value ScanHpd(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsString()) return Fail(env, "scanHpd: expected a path");
  std::string path = info[0].As<Napi::String>();
  auto t0 = std::chrono::steady_clock::now();
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Fail(env, path + ": " + strerror(errno));
  struct stat st;
  if (fstat(fd, &st) != 0) {
    int e = errno;
    close(fd);
    return Fail(env, path + ": " + strerror(e));
  }
  size_t size = static_cast<size_t>(st.st_size);
  if (size == 0) {
    close(fd);
    return Fail(env, path + ": empty file (no header)");
  }
  void* map = mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
  close(fd);
  if (map == MAP_FAILED) return Fail(env, path + ": mmap: " + strerror(errno));
  madvise(map, size, MADV_SEQUENTIAL);
  const uint8_t* data = static_cast<const uint8_t*>(map);

  const char* err_msg = nullptr;
  size_t err_at = 0;
  long long start = hpxdec_check_hpd_header(data, size, &err_msg, &err_at);
  if (start < 0) {
    munmap(map, size);
    return Fail(env, path + ": " + err_msg + " at byte " + std::to_string(err_at));
  }
  Problems problems;
  Columns cols;
  hpxdec_walker w;
  hpxdec_walker_init(&w, data, size, static_cast<size_t>(start), CollectProblem, &problems);
  hpxdec_block b;
  int saw_end = 0;
  double blocks = 0, events = 0, rss = 0, last_us = 0;
  double counted[2] = {0, 0}, summed[2] = {0, 0};  // allocations and frees, by op
  LiveByTrace live;
  size_t released = 0;  // bytes of the mapping handed back to the kernel (keeps RSS flat)
  while (hpxdec_next_block(&w, &b)) {
    blocks++;
    cols.ev.length = 0;
    if (!cols.Reserve(PlausibleCount(b))) {
      munmap(map, size);
      return Fail(env, "scanHpd: out of memory");
    }
    if (DecodeOneBlock(b, &cols.ev, &problems, &saw_end)) {
      const hpxdec_events& ev = cols.ev;
      for (size_t i = 0; i < ev.length; i++) {
        uint8_t op = ev.op[i];
        if (op <= HPXDEC_OP_FREE) {
          counted[op]++;
          summed[op] += ev.size[i];
          if (!live.Apply(op, ev.trace[i], ev.size[i])) {
            munmap(map, size);
            return Fail(env, "scanHpd: out of memory");
          }
        } else if (op == HPXDEC_OP_RSS) {
          rss++;
        }
      }
      events += static_cast<double>(ev.length);
      if (ev.length > 0) last_us = ev.time_us[ev.length - 1];
    }
    if (saw_end) break;
    size_t done = (b.offset & ~static_cast<size_t>(0xFFFFF));
    if (done >= released + (64u << 20)) {
      madvise(static_cast<uint8_t*>(map) + released, done - released, MADV_DONTNEED);
      released = done;
    }
  }
  munmap(map, size);
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  Napi::Object out = Napi::Object::New(env);
  out.Set("bytes", Napi::Number::New(env, static_cast<double>(size)));
  out.Set("blocks", Napi::Number::New(env, blocks));
  out.Set("events", Napi::Number::New(env, events));
  out.Set("allocs", Napi::Number::New(env, counted[HPXDEC_OP_ALLOC]));
  out.Set("frees", Napi::Number::New(env, counted[HPXDEC_OP_FREE]));
  out.Set("rss", Napi::Number::New(env, rss));
  out.Set("allocBytes", Napi::Number::New(env, summed[HPXDEC_OP_ALLOC]));
  out.Set("freeBytes", Napi::Number::New(env, summed[HPXDEC_OP_FREE]));
  out.Set("liveBytes", Napi::Number::New(env, live.total));
  out.Set("peakLiveBytes", Napi::Number::New(env, live.peak));
  out.Set("lastUs", Napi::Number::New(env, last_us));
  out.Set("complete", Napi::Boolean::New(env, saw_end != 0));
  out.Set("problems", ProblemsToJs(env, problems));
  out.Set("problemsDropped", Napi::Number::New(env, problems.dropped));
  out.Set("seconds", Napi::Number::New(env, seconds));
  return out;
}

// decodeBlockInto(payload, count, blockTimeUs, fromUs, toUs, op, timeUs, trace, size, out):
// one block's events into an EventBatch's columns from index 0, as decodeEventBlock does in
// TypeScript (lib/format/events.ts). True with out = [length, sawEnd, maxTrace]; false when the
// block does not decode (or the columns are too short), with nothing promised about the columns:
// the caller then decodes the block in TypeScript, which says what is wrong with it. No
// allocation, no exception: readers call it once per block on the decoding thread.
Napi::Value DecodeBlockInto(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 10 || !info[0].IsTypedArray() || !info[5].IsTypedArray() || !info[6].IsTypedArray() ||
      !info[7].IsTypedArray() || !info[8].IsTypedArray() || !info[9].IsTypedArray()) {
    return Fail(env, "decodeBlockInto: expected (payload, count, blockTimeUs, fromUs, toUs, op, timeUs, trace, size, out)");
  }
  Napi::Uint8Array payload = info[0].As<Napi::Uint8Array>();
  double count_d = info[1].As<Napi::Number>().DoubleValue();
  double block_time_us = info[2].As<Napi::Number>().DoubleValue();
  double from_us = info[3].As<Napi::Number>().DoubleValue();
  double to_us = info[4].As<Napi::Number>().DoubleValue();
  Napi::TypedArray op = info[5].As<Napi::TypedArray>();
  Napi::TypedArray time_us = info[6].As<Napi::TypedArray>();
  Napi::TypedArray trace = info[7].As<Napi::TypedArray>();
  Napi::TypedArray size = info[8].As<Napi::TypedArray>();
  Napi::TypedArray out = info[9].As<Napi::TypedArray>();
  if (op.TypedArrayType() != napi_uint8_array || time_us.TypedArrayType() != napi_float64_array ||
      trace.TypedArrayType() != napi_uint32_array || size.TypedArrayType() != napi_float64_array ||
      out.TypedArrayType() != napi_float64_array || out.ElementLength() < 3) {
    return Fail(env, "decodeBlockInto: columns must be Uint8Array, Float64Array, Uint32Array, Float64Array, and out a Float64Array(3)");
  }
  if (!(count_d >= 0 && count_d <= 4294967295.0)) return Napi::Boolean::New(env, false);
  uint32_t count = static_cast<uint32_t>(count_d);
  size_t room = op.ElementLength();
  if (time_us.ElementLength() < room) room = time_us.ElementLength();
  if (trace.ElementLength() < room) room = trace.ElementLength();
  if (size.ElementLength() < room) room = size.ElementLength();
  if (room < count) return Napi::Boolean::New(env, false);
  hpxdec_events ev{};
  ev.op = static_cast<uint8_t*>(op.As<Napi::Uint8Array>().Data());
  ev.time_us = time_us.As<Napi::Float64Array>().Data();
  ev.trace = trace.As<Napi::Uint32Array>().Data();
  ev.size = size.As<Napi::Float64Array>().Data();
  ev.length = 0;
  ev.capacity = room;
  int saw_end = 0;
  uint32_t max_trace = 0;
  size_t err_at = 0;
  const char* err_msg = nullptr;
  if (hpxdec_decode_block_range(payload.Data(), payload.ByteLength(), count, block_time_us, from_us, to_us, &ev,
                                &saw_end, &max_trace, &err_at, &err_msg) != 0) {
    return Napi::Boolean::New(env, false);
  }
  double* o = out.As<Napi::Float64Array>().Data();
  o[0] = static_cast<double>(ev.length);
  o[1] = saw_end;
  o[2] = max_trace;
  return Napi::Boolean::New(env, true);
}

// Typed array argument k, of one element type: its data and length. False, with a JS exception
// pending, when the argument is something else.
template <typename T>
bool ArrayArg(const Napi::CallbackInfo& info, size_t k, napi_typedarray_type type, T** data, size_t* length) {
  // napi_get_typedarray_info gives the data of arrays over a SharedArrayBuffer too (the decoding
  // thread's batches), where napi_get_arraybuffer_info would refuse the buffer.
  napi_typedarray_type actual;
  void* p = nullptr;
  if (!info[k].IsTypedArray() ||
      napi_get_typedarray_info(info.Env(), info[k], &actual, length, &p, nullptr, nullptr) != napi_ok || actual != type) {
    Napi::TypeError::New(info.Env(), "argument " + std::to_string(k) + " has the wrong type").ThrowAsJavaScriptException();
    return false;
  }
  *data = static_cast<T*>(p);
  return true;
}

// Arguments 0-5 of the kernels: a batch's four event columns and the run [from, to) within
// them. False, with a JS exception pending, when they do not fit each other.
bool RunArgs(const Napi::CallbackInfo& info, const char* name, hpx_run_events* ev, size_t* from, size_t* to) {
  size_t n_op, n_time, n_trace, n_size;
  uint8_t* op;
  double *time_us, *size;
  uint32_t* trace;
  if (!ArrayArg(info, 0, napi_uint8_array, &op, &n_op) || !ArrayArg(info, 1, napi_float64_array, &time_us, &n_time) ||
      !ArrayArg(info, 2, napi_uint32_array, &trace, &n_trace) || !ArrayArg(info, 3, napi_float64_array, &size, &n_size)) {
    return false;
  }
  const double from_d = info[4].IsNumber() ? info[4].As<Napi::Number>().DoubleValue() : -1;
  const double to_d = info[5].IsNumber() ? info[5].As<Napi::Number>().DoubleValue() : -1;
  // Every index the kernel uses is inside what it was given.
  size_t events = n_op < n_time ? n_op : n_time;
  events = n_trace < events ? n_trace : events;
  events = n_size < events ? n_size : events;
  if (!(from_d >= 0 && to_d >= from_d && to_d <= static_cast<double>(events))) {
    Napi::Error::New(info.Env(), std::string(name) + ": run out of range").ThrowAsJavaScriptException();
    return false;
  }
  *ev = hpx_run_events{op, time_us, trace, size};
  *from = static_cast<size_t>(from_d);
  *to = static_cast<size_t>(to_d);
  return true;
}

// applyRun(op, timeUs, trace, size, from, to, untilUs, direct, sampled, bytes, bytesVar, count,
//          countVar, poisson, bounds, bucketRange, w, cv, state) -> the index it stopped at.
// state (Float64Array(8)): totalBytes, totalBytesVar, totalCount, totalCountVar, totalSampled,
// lastRunUs, unmatchedFrees, read and written back; state[7] = why it stopped (kernels.h).
Napi::Value ApplyRun(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 19) return Fail(env, "applyRun: expected 19 arguments");
  size_t n_direct, n_sampled, n_bytes, n_bytes_var, n_count, n_count_var, n_bounds, n_bucket, n_w, n_cv, n_state;
  double *sampled, *bytes, *bytes_var, *count, *count_var, *bounds, *w, *cv, *state;
  int32_t* direct;
  int8_t* bucket;
  hpx_run_events ev;
  size_t from, to;
  if (!RunArgs(info, "applyRun", &ev, &from, &to) || !ArrayArg(info, 7, napi_int32_array, &direct, &n_direct) ||
      !ArrayArg(info, 8, napi_float64_array, &sampled, &n_sampled) ||
      !ArrayArg(info, 9, napi_float64_array, &bytes, &n_bytes) ||
      !ArrayArg(info, 10, napi_float64_array, &bytes_var, &n_bytes_var) ||
      !ArrayArg(info, 11, napi_float64_array, &count, &n_count) ||
      !ArrayArg(info, 12, napi_float64_array, &count_var, &n_count_var) ||
      !ArrayArg(info, 14, napi_float64_array, &bounds, &n_bounds) ||
      !ArrayArg(info, 15, napi_int8_array, &bucket, &n_bucket) || !ArrayArg(info, 16, napi_float64_array, &w, &n_w) ||
      !ArrayArg(info, 17, napi_float64_array, &cv, &n_cv) || !ArrayArg(info, 18, napi_float64_array, &state, &n_state)) {
    return env.Undefined();
  }
  if (n_state < 8) return Fail(env, "applyRun: state must be a Float64Array(8)");
  const double until_us = info[6].IsNumber() ? info[6].As<Napi::Number>().DoubleValue() : 0;
  const bool poisson = info[13].ToBoolean().Value();
  size_t slots = n_sampled;
  for (size_t n : {n_bytes, n_bytes_var, n_count, n_count_var}) slots = n < slots ? n : slots;
  if (n_w == 0 || n_cv != n_w || (!poisson && (n_bucket < 33 || n_w != n_bounds + 1))) {
    return Fail(env, "applyRun: weights do not match the sampler");
  }
  if (!poisson) {
    for (size_t j = 0; j < 33; j++) {
      if (bucket[j] >= 0 && static_cast<size_t>(bucket[j]) >= n_w) return Fail(env, "applyRun: bucket range out of range");
    }
  }
  hpx_live heap{};
  heap.direct = direct;
  heap.direct_len = n_direct;
  heap.sampled = sampled;
  heap.bytes = bytes;
  heap.bytes_var = bytes_var;
  heap.count = count;
  heap.count_var = count_var;
  heap.slots_len = slots;
  heap.total_bytes = state[0];
  heap.total_bytes_var = state[1];
  heap.total_count = state[2];
  heap.total_count_var = state[3];
  heap.total_sampled = state[4];
  heap.last_us = state[5];
  heap.unmatched_frees = state[6];
  hpx_weights wt{};
  wt.poisson = poisson;
  wt.bounds = bounds;
  wt.n_bounds = n_bounds;
  wt.bucket_range = bucket;
  wt.w = w;
  wt.cv = cv;
  wt.w_len = n_w;
  int why = HPX_RUN_DONE;
  size_t stop = hpx_apply_run(&ev, from, to, until_us, &heap, &wt, &why);
  state[0] = heap.total_bytes;
  state[1] = heap.total_bytes_var;
  state[2] = heap.total_count;
  state[3] = heap.total_count_var;
  state[4] = heap.total_sampled;
  state[5] = heap.last_us;
  state[6] = heap.unmatched_frees;
  state[7] = why;
  return Napi::Number::New(env, static_cast<double>(stop));
}

// tallyRun(op, timeUs, trace, size, from, to, checkFrees, live, state) -> the index it stopped
// at. state (Float64Array(6)): unmatched, firstUnmatchedUs, firstUnmatchedTrace, lost,
// firstLostUs, read and written back; state[5] = why it stopped (kernels.h).
Napi::Value TallyRun(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 9) return Fail(env, "tallyRun: expected 9 arguments");
  size_t n_live, n_state;
  double* state;
  int32_t* live;
  hpx_run_events ev;
  size_t from, to;
  if (!RunArgs(info, "tallyRun", &ev, &from, &to) || !ArrayArg(info, 7, napi_int32_array, &live, &n_live) ||
      !ArrayArg(info, 8, napi_float64_array, &state, &n_state)) {
    return env.Undefined();
  }
  if (n_state < 6) return Fail(env, "tallyRun: state must be a Float64Array(6)");
  const bool check_frees = info[6].ToBoolean().Value();
  hpx_tally tally{state[0], state[1], state[2], state[3], state[4]};
  int why = HPX_RUN_DONE;
  size_t stop = hpx_tally_run(&ev, from, to, check_frees, live, n_live, &tally, &why);
  state[0] = tally.unmatched;
  state[1] = tally.first_unmatched_us;
  state[2] = tally.first_unmatched_trace;
  state[3] = tally.lost;
  state[4] = tally.first_lost_us;
  state[5] = why;
  return Napi::Number::New(env, static_cast<double>(stop));
}

// splitRun(op, timeUs, trace, size, from, to, tab, state, bounds, q, halves, totals) -> the index
// it stopped at. state (Float64Array(7)): ordinal, totalA, used, mask, seed, keyedOthers (0/1),
// read and written back (ordinal, totalA, used); state[6] = why it stopped (kernels.h).
Napi::Value SplitRun(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 12) return Fail(env, "splitRun: expected 12 arguments");
  size_t n_tab, n_state, n_bounds, n_q, n_halves, n_totals;
  double *tab, *state, *bounds, *q, *totals;
  uint8_t* halves;
  hpx_run_events ev;
  size_t from, to;
  if (!RunArgs(info, "splitRun", &ev, &from, &to) || !ArrayArg(info, 6, napi_float64_array, &tab, &n_tab) ||
      !ArrayArg(info, 7, napi_float64_array, &state, &n_state) || !ArrayArg(info, 8, napi_float64_array, &bounds, &n_bounds) ||
      !ArrayArg(info, 9, napi_float64_array, &q, &n_q) || !ArrayArg(info, 10, napi_uint8_array, &halves, &n_halves) ||
      !ArrayArg(info, 11, napi_float64_array, &totals, &n_totals)) {
    return env.Undefined();
  }
  if (n_state < 7) return Fail(env, "splitRun: state must be a Float64Array(7)");
  if (n_q != n_bounds) return Fail(env, "splitRun: one probability per bound");
  if (n_halves < to || n_totals < to) return Fail(env, "splitRun: outputs shorter than the run");
  const double mask_d = state[3], seed_d = state[4];
  // The table: a power of two of entries, two doubles each, and not more than 3/4 full.
  if (!(mask_d >= 1 && mask_d < 4294967296.0) || mask_d != static_cast<double>(static_cast<uint64_t>(mask_d)) ||
      ((static_cast<uint64_t>(mask_d) + 1) & static_cast<uint64_t>(mask_d)) != 0 ||
      n_tab != 2 * (static_cast<size_t>(mask_d) + 1)) {
    return Fail(env, "splitRun: table does not match its mask");
  }
  if (!(state[2] >= 0 && 4 * state[2] <= 3 * (mask_d + 1)) || !(seed_d >= 0 && seed_d < 4294967296.0) ||
      !(state[0] >= 0 && state[0] <= 9007199254740991.0)) {
    return Fail(env, "splitRun: state out of range");
  }
  hpx_split sp{state[0], state[1], state[2], static_cast<uint32_t>(mask_d), static_cast<uint32_t>(seed_d), state[5] != 0};
  int why = HPX_RUN_DONE;
  size_t stop = hpx_split_run(&ev, from, to, tab, &sp, bounds, q, n_bounds, halves, totals, &why);
  state[0] = sp.ordinal;
  state[1] = sp.total_a;
  state[2] = sp.used;
  state[6] = why;
  return Napi::Number::New(env, static_cast<double>(stop));
}

Napi::Value Crc32(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsTypedArray()) return Fail(env, "crc32: expected a Buffer or Uint8Array");
  Napi::Uint8Array bytes = info[0].As<Napi::Uint8Array>();
  uint32_t crc = info.Length() > 1 && info[1].IsNumber() ? info[1].As<Napi::Number>().Uint32Value() : 0;
  return Napi::Number::New(env, hpxdec_crc32(crc, bytes.Data(), bytes.ByteLength()));
}

// A reader that lib/start.ts ran again (a second Node with --no-concurrent-recompilation) ends
// with the first one, even blocked in a synchronous read (a FIFO with no writer), where a timer
// of its own would never run: the kernel kills it when its parent dies. If the parent named is
// already gone (it died before this call, and no signal will come), it ends now. Linux only.
Napi::Value DieWithParent(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsNumber()) return Fail(env, "dieWithParent: expected the parent's pid");
  const int parent = info[0].As<Napi::Number>().Int32Value();
  if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0) return Napi::Boolean::New(env, false);
  if (getppid() != parent) kill(getpid(), SIGKILL);
  return Napi::Boolean::New(env, true);
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("decodeHpd", Napi::Function::New(env, DecodeHpd, "decodeHpd"));
  exports.Set("scanHpd", Napi::Function::New(env, ScanHpd, "scanHpd"));
  exports.Set("decodeBlockInto", Napi::Function::New(env, DecodeBlockInto, "decodeBlockInto"));
  exports.Set("applyRun", Napi::Function::New(env, ApplyRun, "applyRun"));
  exports.Set("tallyRun", Napi::Function::New(env, TallyRun, "tallyRun"));
  exports.Set("splitRun", Napi::Function::New(env, SplitRun, "splitRun"));
  exports.Set("crc32", Napi::Function::New(env, Crc32, "crc32"));
  exports.Set("dieWithParent", Napi::Function::New(env, DieWithParent, "dieWithParent"));
  // Once per process, however many threads load the addon (readers decode on a worker thread):
  // a function-local static is initialised exactly once, without a race.
  static const char* const block_crc32 = UseFastestCrc32();
  exports.Set("blockCrc32", Napi::String::New(env, block_crc32));
  exports.Set("abiVersion", Napi::Number::New(env, 6));  // lib/native.ts ADDON_ABI
  return exports;
}

}  // namespace

NODE_API_MODULE(hpx_decoder, Init)
