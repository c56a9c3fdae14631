{
  "targets": [
    {
      "target_name": "aoe_native",
      "conditions": [
        ["OS=='linux'", {
          "sources": [
            "native/binding.c",
            "native/error.c",
            "native/ioring.c",
            "native/mapped.c",
            "native/link.c",
            "native/packet.c",
            "native/privilege.c",
            "native/waiter.c",
            "native/reflink.c",
            "native/remote.c",
            "native/nbd.c",
            "native/rbd.c",
            "native/rbd-lock.c"
          ],
          "libraries": ["-ldl", "-lpthread"],
          "defines": ["NAPI_VERSION=8"],
          "cflags!": ["-O3"],
          "cflags": ["-std=gnu11", "-O2", "-Wall", "-Wextra"]
        }, {
          "type": "none"
        }]
      ]
    },
    {
      "target_name": "aoe-reflector",
      "type": "executable",
      "product_dir": "<(PRODUCT_DIR)/../bench",
      "conditions": [
        ["OS=='linux'", {
          "sources": ["bench/c/aoe-reflector.c"],
          "cflags!": ["-O3"],
          "cflags": ["-std=gnu11", "-O2", "-Wall", "-Wextra"]
        }, {
          "type": "none"
        }]
      ]
    },
    {
      "target_name": "aoe-storm",
      "type": "executable",
      "product_dir": "<(PRODUCT_DIR)/../bench",
      "conditions": [
        ["OS=='linux'", {
          "sources": ["bench/c/aoe-storm.c"],
          "cflags!": ["-O3"],
          "cflags": ["-std=gnu11", "-O2", "-Wall", "-Wextra"]
        }, {
          "type": "none"
        }]
      ]
    },
    {
      "target_name": "aoe-loadgen",
      "type": "executable",
      "product_dir": "<(PRODUCT_DIR)/../bench",
      "conditions": [
        ["OS=='linux'", {
          "sources": ["bench/c/aoe-loadgen.c"],
          "cflags!": ["-O3"],
          "cflags": ["-std=gnu11", "-O2", "-Wall", "-Wextra"]
        }, {
          "type": "none"
        }]
      ]
    }
  ]
}
