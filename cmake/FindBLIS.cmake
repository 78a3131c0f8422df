# Finds Debian's BLIS (libblis-openmp-dev), preferring the static archive: rvattn fills
# the BLIS context itself and needs the bli_cntx_init_<arch> functions it exports.
# Creates the imported target BLIS::BLIS. BLIS ships neither a .pc file nor a CMake
# config, hence this module.
find_path(BLIS_INCLUDE_DIR blis.h
  HINTS /usr/include/x86_64-linux-gnu/blis-openmp /usr/include/blis-openmp
        /usr/include/x86_64-linux-gnu /usr/include/blis)
find_library(BLIS_LIBRARY NAMES libblis.a blis
  HINTS /usr/lib/x86_64-linux-gnu/blis-openmp /usr/lib/blis-openmp)
include(FindPackageHandleStandardArgs)
find_package_handle_standard_args(BLIS REQUIRED_VARS BLIS_LIBRARY BLIS_INCLUDE_DIR)
if(BLIS_FOUND AND NOT TARGET BLIS::BLIS)
  add_library(BLIS::BLIS UNKNOWN IMPORTED)
  # INTERFACE_INCLUDE_DIRECTORIES of an imported target become -isystem: blis.h would
  # otherwise emit hundreds of -Wpedantic warnings.
  set_target_properties(BLIS::BLIS PROPERTIES
    IMPORTED_LOCATION "${BLIS_LIBRARY}"
    INTERFACE_INCLUDE_DIRECTORIES "${BLIS_INCLUDE_DIR}")
  find_package(OpenMP REQUIRED COMPONENTS C)
  # libblis.a needs OpenMP and libm after it on the link line.
  set_property(TARGET BLIS::BLIS PROPERTY INTERFACE_LINK_LIBRARIES OpenMP::OpenMP_C m)
endif()
mark_as_advanced(BLIS_INCLUDE_DIR BLIS_LIBRARY)
