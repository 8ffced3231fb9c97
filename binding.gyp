{
  "targets": [
    {
      "target_name": "heapprof_hook",
      "type": "shared_library",
      "product_prefix": "",
      "product_extension": "so",
      "sources": ["native/hook.c", "native/pyrt.c", "native/hpxw.c", "native/tables.c", "native/attach.c"],
      "cflags": ["-O2", "-std=gnu11", "-fvisibility=hidden", "-Wall", "-Wextra"],
      "libraries": ["-lm", "-lpthread", "-ldl", "-lz"]
    },
    {
      "target_name": "hpx_decoder",
      "sources": ["native/decoder/hpxdec.c", "native/decoder/kernels.c", "native/decoder/addon.cc"],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_DISABLE_CPP_EXCEPTIONS", "NODE_API_SWALLOW_UNTHROWABLE_EXCEPTIONS", "NAPI_VERSION=8"],
      "cflags": ["-O2", "-Wall", "-Wextra", "-ffp-contract=off"],
      "cflags_c": ["-std=c11"],
      "cflags_cc": ["-std=c++17"]
    }
  ]
}
