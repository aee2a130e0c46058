# SPDX-License-Identifier: Apache-2.0
# The heraldd server (included from api/CMakeLists.txt).
add_library(herald_api STATIC util.c append.c read.c tail.c status.c routes.c data_dir.c members.c cluster_routes.c)
target_include_directories(herald_api PUBLIC ${CMAKE_CURRENT_SOURCE_DIR})
target_compile_definitions(herald_api PUBLIC HERALD_VERSION="${PROJECT_VERSION}")
target_link_libraries(herald_api PUBLIC herald_consensus herald_http PkgConfig::JANSSON)
add_executable(heraldd main.c)
target_link_libraries(heraldd PRIVATE herald_api)
