# SPDX-License-Identifier: MIT
# Warnings for every IPC-Direct target; -Werror with IPCD_WERROR=ON (CI).
option(IPCD_WERROR "Treat warnings as errors" OFF)

add_compile_options(
  -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes
  -Wmissing-declarations -Wold-style-definition -Wwrite-strings -Wformat=2
  -Wcast-align -Wpointer-arith -Wundef -Wvla)
if(IPCD_WERROR)
  add_compile_options(-Werror)
endif()
add_link_options(-Wl,-z,defs)
