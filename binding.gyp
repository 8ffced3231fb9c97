{
  "targets": [
    {
      "target_name": "heapprof_hook",
      "type": "shared_library",
      "product_prefix": "",
      "product_extension": "so",
      "sources": ["native/hook.c", "native/pyrt.c", "native/hpxw.c", "native/tables.c"],
      "cflags": ["-O2", "-std=gnu11", "-fvisibility=hidden", "-Wall", "-Wextra"],
      "libraries": ["-lm", "-lpthread", "-ldl"]
    }
  ]
}
