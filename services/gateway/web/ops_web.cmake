# The ops page (/ops/) and the SDK's example pages (/ops/try/), bundled by esbuild into
# <build>/ops-web, where meridian-gateway finds them (MERIDIAN_OPS_WEB_DIR overrides). Also
# checks the JavaScript SDK against the protocol: clients/js/types/protocol.d.ts must be what
# schemas/ws/ gives, and tsc must accept the SDK with it, so a protocol change breaks the
# build. Needs node and the npm packages `scripts/setup` installs (npm ci): without them the
# configuration fails. MERIDIAN_OPS_WEB=OFF leaves the pages out on purpose (the image's
# build stage, which has no node: /ops/ then answers 404).
option(MERIDIAN_OPS_WEB "Build the ops pages and check the JavaScript SDK's types (needs node + npm ci)" ON)
set(MERIDIAN_NODE_MODULES ${CMAKE_SOURCE_DIR}/node_modules)
if(MERIDIAN_OPS_WEB)
  find_program(NODE_EXECUTABLE node)
  if(NOT NODE_EXECUTABLE OR NOT EXISTS ${MERIDIAN_NODE_MODULES}/esbuild
     OR NOT EXISTS ${MERIDIAN_NODE_MODULES}/typescript)
    message(FATAL_ERROR "node or node_modules missing (scripts/setup runs npm ci): the /ops/ pages "
                        "and the SDK type check cannot be built (MERIDIAN_OPS_WEB=OFF leaves them out)")
  endif()
  file(GLOB_RECURSE OPS_WEB_SOURCES CONFIGURE_DEPENDS
       ${CMAKE_SOURCE_DIR}/services/gateway/web/ops/* ${CMAKE_SOURCE_DIR}/clients/js/src/*.js
       ${CMAKE_SOURCE_DIR}/clients/js/examples/* ${CMAKE_SOURCE_DIR}/schemas/ws/*.json
       ${CMAKE_SOURCE_DIR}/clients/js/types/*.d.ts)
  add_custom_command(
    OUTPUT ${CMAKE_BINARY_DIR}/ops-web/ops.js ${CMAKE_BINARY_DIR}/ops-web.stamp
    COMMAND ${NODE_EXECUTABLE} ${CMAKE_SOURCE_DIR}/clients/js/tools/gen-types.mjs --check
    COMMAND ${NODE_EXECUTABLE} ${MERIDIAN_NODE_MODULES}/typescript/bin/tsc -p ${CMAKE_SOURCE_DIR}/clients/js
    COMMAND ${NODE_EXECUTABLE} ${CMAKE_SOURCE_DIR}/services/gateway/web/build.mjs ${CMAKE_BINARY_DIR}/ops-web
    COMMAND ${CMAKE_COMMAND} -E touch ${CMAKE_BINARY_DIR}/ops-web.stamp
    DEPENDS ${OPS_WEB_SOURCES} ${CMAKE_SOURCE_DIR}/services/gateway/web/build.mjs
            ${CMAKE_SOURCE_DIR}/clients/js/tools/gen-types.mjs
    WORKING_DIRECTORY ${CMAKE_SOURCE_DIR}
    COMMENT "ops-web: SDK types and type check, then the /ops/ pages (esbuild)"
    VERBATIM)
  add_custom_target(ops_web ALL DEPENDS ${CMAKE_BINARY_DIR}/ops-web.stamp)
endif()
