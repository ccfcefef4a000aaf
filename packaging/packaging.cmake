# Packaging: install rules for everything corral ships, and CPack DEB + RPM settings.
# Included last from the top-level CMakeLists.txt, so every target exists here.
#
#   cmake -S . -B build-package -DCMAKE_INSTALL_PREFIX=/usr -DCORRAL_TESTS=OFF && cmake --build build-package --target package
#
# The one version is project(corral VERSION ...); binaries get it as CORRAL_VERSION, the
# packages as CPACK_PACKAGE_VERSION, the man pages through @VERSION@.
# Files under /usr are installed with relative destinations and /etc files with absolute
# ones: CPack RPM marks every absolute-destination file %config, so only the conffiles are.
# CORRAL_CONFFILES is the single list feeding both the dpkg conffiles file and the RPM
# %config(noreplace) entries.
include(GNUInstallDirs)

set(CORRAL_PKG_DIR ${PROJECT_SOURCE_DIR}/packaging)
set(CORRAL_PKG_OUT ${PROJECT_BINARY_DIR}/packaging)
set(CORRAL_PACKAGE_LICENSE "MIT" CACHE STRING "License named in the packages (see packaging/copyright)")
set(CORRAL_MAINTAINER "corral maintainers <maintainers@users.noreply.r-seed-5daeaf1b.example>")
set(CORRAL_SYSCONFDIR ${CMAKE_INSTALL_FULL_SYSCONFDIR})

# corral-placeholder: the app the default /etc/corral/corral.toml serves until an operator
# configures theirs (a C++ binary, so the package needs no Python).
add_executable(corral-placeholder ${CORRAL_PKG_DIR}/placeholder/main.cc)
target_link_libraries(corral-placeholder PRIVATE corral_warnings)

# corral.toml(5) is generated from the schema by a build-time tool; the other man pages are
# written by hand and only get the version.
add_executable(corral-conf-man ${CORRAL_PKG_DIR}/man/conf_man.cc)
target_link_libraries(corral-conf-man PRIVATE corral_conf)
set_target_properties(corral-conf-man PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CORRAL_PKG_OUT})
set(VERSION ${PROJECT_VERSION})
foreach(page corral-supervisor.8 corral-proxy.8 corralctl.1)
  configure_file(${CORRAL_PKG_DIR}/man/${page}.in ${CORRAL_PKG_OUT}/man/${page} @ONLY)
endforeach()
add_custom_command(
  OUTPUT ${CORRAL_PKG_OUT}/man/corral.toml.5
  COMMAND corral-conf-man ${CORRAL_PKG_DIR}/man/corral.toml.5.in ${CORRAL_PKG_OUT}/man/corral.toml.5 ${PROJECT_VERSION}
  DEPENDS corral-conf-man ${CORRAL_PKG_DIR}/man/corral.toml.5.in
  COMMENT "corral.toml(5) from the config schema")
set(CORRAL_MAN_PAGES ${CORRAL_PKG_OUT}/man/corral-supervisor.8 ${CORRAL_PKG_OUT}/man/corral-proxy.8
    ${CORRAL_PKG_OUT}/man/corralctl.1 ${CORRAL_PKG_OUT}/man/corral.toml.5)
set(CORRAL_MAN_GZ)
foreach(page ${CORRAL_MAN_PAGES})
  get_filename_component(name ${page} NAME)
  # -n: no name or timestamp in the gzip header, so the packages build reproducibly.
  add_custom_command(OUTPUT ${CORRAL_PKG_OUT}/man/${name}.gz
    COMMAND gzip -9n -c ${page} > ${CORRAL_PKG_OUT}/man/${name}.gz
    DEPENDS ${page})
  list(APPEND CORRAL_MAN_GZ ${CORRAL_PKG_OUT}/man/${name}.gz)
endforeach()
configure_file(${CORRAL_PKG_DIR}/changelog.in ${CORRAL_PKG_OUT}/changelog @ONLY)
add_custom_command(OUTPUT ${CORRAL_PKG_OUT}/changelog.gz
  COMMAND gzip -9n -c ${CORRAL_PKG_OUT}/changelog > ${CORRAL_PKG_OUT}/changelog.gz
  DEPENDS ${CORRAL_PKG_OUT}/changelog)
add_custom_target(corral-docs ALL DEPENDS ${CORRAL_MAN_GZ} ${CORRAL_PKG_OUT}/changelog.gz)

# --- install layout -------------------------------------------------------------------------
install(TARGETS corral-supervisor corral-proxy DESTINATION ${CMAKE_INSTALL_SBINDIR})
install(TARGETS corralctl DESTINATION ${CMAKE_INSTALL_BINDIR})
install(TARGETS corral-placeholder DESTINATION ${CORRAL_LIBEXECDIR})
if(TARGET corral-worker)
  install(TARGETS corral-worker DESTINATION ${CORRAL_LIBEXECDIR})
endif()
if(TARGET corral_wsgi_module)  # next to corral-worker, where it looks first
  install(TARGETS corral_wsgi_module DESTINATION ${CORRAL_LIBEXECDIR})
endif()

set(CORRAL_CONFFILES ${CORRAL_SYSCONFDIR}/corral/corral.toml ${CORRAL_SYSCONFDIR}/logrotate.d/corral)
install(FILES ${PROJECT_SOURCE_DIR}/conf/corral.toml DESTINATION ${CORRAL_SYSCONFDIR}/corral)
install(FILES ${CORRAL_PKG_DIR}/logrotate/corral DESTINATION ${CORRAL_SYSCONFDIR}/logrotate.d)
# The log directory logrotate rotates; systemd (LogsDirectory=) keeps its mode.
install(DIRECTORY DESTINATION ${CMAKE_INSTALL_FULL_LOCALSTATEDIR}/log/corral
        DIRECTORY_PERMISSIONS OWNER_READ OWNER_WRITE OWNER_EXECUTE GROUP_READ GROUP_EXECUTE WORLD_READ WORLD_EXECUTE)
install(FILES ${CORRAL_PKG_DIR}/deb/lintian-overrides DESTINATION ${CMAKE_INSTALL_DATADIR}/lintian/overrides RENAME corral)

install(FILES ${CORRAL_PKG_DIR}/systemd/corral.service DESTINATION lib/systemd/system)
install(FILES ${CORRAL_PKG_DIR}/sysusers/corral.conf DESTINATION lib/sysusers.d)
install(FILES ${CORRAL_PKG_DIR}/completion/corralctl DESTINATION ${CMAKE_INSTALL_DATADIR}/bash-completion/completions)
foreach(gz ${CORRAL_MAN_GZ})
  string(REGEX MATCH "\\.([0-9])\\.gz$" _ ${gz})
  install(FILES ${gz} DESTINATION ${CMAKE_INSTALL_MANDIR}/man${CMAKE_MATCH_1})
endforeach()
set(CORRAL_DOCDIR ${CMAKE_INSTALL_DATADIR}/doc/corral)
install(FILES ${PROJECT_SOURCE_DIR}/README.md ${CORRAL_PKG_DIR}/copyright ${CORRAL_PKG_OUT}/changelog.gz
        DESTINATION ${CORRAL_DOCDIR})
install(FILES ${CORRAL_PKG_DIR}/systemd/strict.conf DESTINATION ${CORRAL_DOCDIR}/examples)
install(DIRECTORY ${PROJECT_SOURCE_DIR}/conf/examples/ DESTINATION ${CORRAL_DOCDIR}/examples
        FILES_MATCHING PATTERN "*.toml")
install(DIRECTORY ${CORRAL_PKG_DIR}/kubernetes/ DESTINATION ${CORRAL_DOCDIR}/examples/kubernetes
        FILES_MATCHING PATTERN "*.yaml")

# --- CPack ----------------------------------------------------------------------------------
set(CPACK_GENERATOR DEB RPM)
set(CPACK_PACKAGE_NAME corral)
set(CPACK_PACKAGE_VENDOR "corral")
set(CPACK_PACKAGE_CONTACT ${CORRAL_MAINTAINER})
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "Front door and process manager for web apps")
set(CPACK_PACKAGE_DESCRIPTION
"corral puts a strict HTTP/1.1 front end and a supervised pool of worker
processes in front of web apps that were never written for the internet:
concurrency-aware dispatch with a bounded queue, request and response
buffering, timeouts, graceful reloads with no failed requests, worker
restarts with back-off, one validated TOML file, and a control tool.")
set(CPACK_RPM_PACKAGE_DESCRIPTION ${CPACK_PACKAGE_DESCRIPTION})
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_STRIP_FILES ON)
set(CPACK_PACKAGE_DIRECTORY ${PROJECT_BINARY_DIR}/packages)

# Debian: dependencies from dpkg-shlibdeps; by hand only what no library link reveals.
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_DEPENDS "init-system-helpers (>= 1.54~), adduser")
# media-types: /etc/mime.types for static routes; python3-minimal: /usr/bin/python3, which WSGI
# workers run on (without it they embed libpython3.11, slower; workers/wsgi/interpreter.h).
set(CPACK_DEBIAN_PACKAGE_RECOMMENDS "logrotate, media-types, python3-minimal")
set(CPACK_DEBIAN_PACKAGE_SECTION httpd)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_PACKAGE_HOMEPAGE "https://corral.invalid/")
set(CPACK_DEBIAN_PACKAGE_MAINTAINER ${CORRAL_MAINTAINER})
set(CPACK_DEBIAN_COMPRESSION_TYPE xz)
set(_conffiles "")
foreach(f ${CORRAL_CONFFILES})
  string(APPEND _conffiles "${f}\n")
endforeach()
file(WRITE ${CORRAL_PKG_OUT}/deb/conffiles "${_conffiles}")
foreach(script postinst prerm postrm)
  file(COPY ${CORRAL_PKG_DIR}/deb/${script} DESTINATION ${CORRAL_PKG_OUT}/deb
       FILE_PERMISSIONS OWNER_READ OWNER_WRITE OWNER_EXECUTE GROUP_READ GROUP_EXECUTE WORLD_READ WORLD_EXECUTE)
endforeach()
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA ${CORRAL_PKG_OUT}/deb/conffiles ${CORRAL_PKG_OUT}/deb/postinst
    ${CORRAL_PKG_OUT}/deb/prerm ${CORRAL_PKG_OUT}/deb/postrm)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)

# RPM: requirements from rpm's autoreq; scriptlets as plain shell (no systemd rpm macros
# exist on a Debian build host).
set(CPACK_RPM_FILE_NAME RPM-DEFAULT)
set(CPACK_RPM_PACKAGE_RELEASE 1)
set(CPACK_RPM_PACKAGE_LICENSE ${CORRAL_PACKAGE_LICENSE})
set(CPACK_RPM_PACKAGE_GROUP "System Environment/Daemons")
set(CPACK_RPM_PACKAGE_URL "https://corral.invalid/")
set(CPACK_RPM_PACKAGE_AUTOREQ ON)
set(CPACK_RPM_PACKAGE_AUTOPROV ON)
set(CPACK_RPM_PACKAGE_REQUIRES "logrotate")
set(CPACK_RPM_PACKAGE_REQUIRES_POST "systemd, shadow-utils")
set(CPACK_RPM_PACKAGE_REQUIRES_PREUN "systemd")
set(CPACK_RPM_PACKAGE_REQUIRES_POSTUN "systemd")
set(CPACK_RPM_POST_INSTALL_SCRIPT_FILE ${CORRAL_PKG_DIR}/rpm/post.sh)
set(CPACK_RPM_PRE_UNINSTALL_SCRIPT_FILE ${CORRAL_PKG_DIR}/rpm/preun.sh)
set(CPACK_RPM_POST_UNINSTALL_SCRIPT_FILE ${CORRAL_PKG_DIR}/rpm/postun.sh)
set(CPACK_RPM_POST_TRANS_SCRIPT_FILE ${CORRAL_PKG_DIR}/rpm/posttrans.sh)
set(CPACK_RPM_USER_FILELIST "")
foreach(f ${CORRAL_CONFFILES})
  list(APPEND CPACK_RPM_USER_FILELIST "%config(noreplace) ${f}")
endforeach()
list(APPEND CPACK_RPM_USER_FILELIST "%dir ${CORRAL_SYSCONFDIR}/corral" "%dir /var/log/corral")
# Directories other packages own (filesystem, systemd, logrotate, bash-completion, man).
set(CPACK_RPM_EXCLUDE_FROM_AUTO_FILELIST_ADDITION
    /usr/bin /usr/sbin /usr/lib /usr/share /usr/share/man /var /var/log /etc/logrotate.d /usr/lib/systemd /usr/lib/systemd/system /usr/lib/sysusers.d
    /usr/share/bash-completion /usr/share/bash-completion/completions
    /usr/share/man/man1 /usr/share/man/man5 /usr/share/man/man8 /usr/share/doc)
set(CPACK_RPM_SPEC_MORE_DEFINE "%define _build_id_links none\n%define packager ${CORRAL_MAINTAINER}")

include(CPack)
