"""The pinned file list of the ``stdlib`` code corpus: non-test modules of CPython's standard library.

Relative to ``sysconfig.get_paths()["stdlib"]``. Chosen once from CPython 3.11 and frozen so the
corpus and its split never move: tests, test-support, generated codec tables (``encodings``),
documentation data (``pydoc_data``), platform-specific and vendored files, empty files and
modules removed from CPython 3.12 or 3.13 are left out. A file missing (or empty) in another
Python's library is skipped (the corpus says how many). 430 files, about 8.6 MB on CPython 3.11.
"""

STDLIB_FILES: tuple[str, ...] = tuple(
    """
__future__.py _collections_abc.py _compression.py _markupbase.py _py_abc.py _pydecimal.py _pyio.py
_sitebuiltins.py _strptime.py _threading_local.py _weakrefset.py abc.py argparse.py ast.py
asyncio/__init__.py asyncio/__main__.py asyncio/base_events.py asyncio/base_futures.py
asyncio/base_subprocess.py asyncio/base_tasks.py asyncio/constants.py asyncio/coroutines.py
asyncio/events.py asyncio/exceptions.py asyncio/format_helpers.py asyncio/futures.py
asyncio/locks.py asyncio/log.py asyncio/mixins.py asyncio/proactor_events.py asyncio/protocols.py
asyncio/queues.py asyncio/runners.py asyncio/selector_events.py asyncio/sslproto.py
asyncio/staggered.py asyncio/streams.py asyncio/subprocess.py asyncio/taskgroups.py asyncio/tasks.py
asyncio/threads.py asyncio/timeouts.py asyncio/transports.py asyncio/trsock.py
asyncio/unix_events.py asyncio/windows_events.py asyncio/windows_utils.py base64.py bdb.py bisect.py
bz2.py cProfile.py calendar.py cmd.py code.py codecs.py codeop.py collections/__init__.py
collections/abc.py colorsys.py compileall.py concurrent/__init__.py concurrent/futures/__init__.py
concurrent/futures/_base.py concurrent/futures/process.py concurrent/futures/thread.py
configparser.py contextlib.py contextvars.py copy.py copyreg.py csv.py ctypes/__init__.py
ctypes/_aix.py ctypes/_endian.py ctypes/macholib/__init__.py ctypes/macholib/dyld.py
ctypes/macholib/dylib.py ctypes/macholib/framework.py ctypes/util.py ctypes/wintypes.py
curses/__init__.py curses/ascii.py curses/has_key.py curses/panel.py curses/textpad.py
dataclasses.py datetime.py dbm/__init__.py dbm/dumb.py dbm/gnu.py dbm/ndbm.py decimal.py difflib.py
dis.py doctest.py email/__init__.py email/_encoded_words.py email/_header_value_parser.py
email/_parseaddr.py email/_policybase.py email/base64mime.py email/charset.py
email/contentmanager.py email/encoders.py email/errors.py email/feedparser.py email/generator.py
email/header.py email/headerregistry.py email/iterators.py email/message.py
email/mime/application.py email/mime/audio.py email/mime/base.py email/mime/image.py
email/mime/message.py email/mime/multipart.py email/mime/nonmultipart.py email/mime/text.py
email/parser.py email/policy.py email/quoprimime.py email/utils.py enum.py filecmp.py fileinput.py
fnmatch.py fractions.py ftplib.py functools.py genericpath.py getopt.py getpass.py gettext.py
glob.py graphlib.py gzip.py hashlib.py heapq.py hmac.py html/__init__.py html/entities.py
html/parser.py http/__init__.py http/client.py http/cookiejar.py http/cookies.py http/server.py
idlelib/__init__.py idlelib/__main__.py idlelib/autocomplete.py idlelib/autocomplete_w.py
idlelib/autoexpand.py idlelib/browser.py idlelib/calltip.py idlelib/calltip_w.py
idlelib/codecontext.py idlelib/colorizer.py idlelib/config.py idlelib/config_key.py
idlelib/configdialog.py idlelib/debugger.py idlelib/debugger_r.py idlelib/debugobj.py
idlelib/debugobj_r.py idlelib/delegator.py idlelib/dynoption.py idlelib/editor.py
idlelib/filelist.py idlelib/format.py idlelib/grep.py idlelib/help.py idlelib/help_about.py
idlelib/history.py idlelib/hyperparser.py idlelib/idle.py idlelib/iomenu.py idlelib/macosx.py
idlelib/mainmenu.py idlelib/multicall.py idlelib/outwin.py idlelib/parenmatch.py
idlelib/pathbrowser.py idlelib/percolator.py idlelib/pyparse.py idlelib/pyshell.py idlelib/query.py
idlelib/redirector.py idlelib/replace.py idlelib/rpc.py idlelib/run.py idlelib/runscript.py
idlelib/scrolledlist.py idlelib/search.py idlelib/searchbase.py idlelib/searchengine.py
idlelib/sidebar.py idlelib/squeezer.py idlelib/stackviewer.py idlelib/statusbar.py
idlelib/textview.py idlelib/tooltip.py idlelib/tree.py idlelib/undo.py idlelib/util.py
idlelib/window.py idlelib/zoomheight.py idlelib/zzdummy.py imaplib.py importlib/__init__.py
importlib/_abc.py importlib/_bootstrap.py importlib/_bootstrap_external.py importlib/abc.py
importlib/machinery.py importlib/metadata/__init__.py importlib/metadata/_adapters.py
importlib/metadata/_collections.py importlib/metadata/_functools.py importlib/metadata/_itertools.py
importlib/metadata/_meta.py importlib/metadata/_text.py importlib/readers.py
importlib/resources/__init__.py importlib/resources/_adapters.py importlib/resources/_common.py
importlib/resources/_itertools.py importlib/resources/_legacy.py importlib/resources/abc.py
importlib/resources/readers.py importlib/resources/simple.py importlib/simple.py importlib/util.py
inspect.py io.py ipaddress.py json/__init__.py json/decoder.py json/encoder.py json/scanner.py
json/tool.py keyword.py linecache.py locale.py logging/__init__.py logging/config.py
logging/handlers.py lzma.py mailbox.py mimetypes.py modulefinder.py multiprocessing/__init__.py
multiprocessing/connection.py multiprocessing/context.py multiprocessing/dummy/__init__.py
multiprocessing/dummy/connection.py multiprocessing/forkserver.py multiprocessing/heap.py
multiprocessing/managers.py multiprocessing/pool.py multiprocessing/popen_fork.py
multiprocessing/popen_forkserver.py multiprocessing/popen_spawn_posix.py
multiprocessing/popen_spawn_win32.py multiprocessing/process.py multiprocessing/queues.py
multiprocessing/reduction.py multiprocessing/resource_sharer.py multiprocessing/resource_tracker.py
multiprocessing/shared_memory.py multiprocessing/sharedctypes.py multiprocessing/spawn.py
multiprocessing/synchronize.py multiprocessing/util.py netrc.py ntpath.py nturl2path.py numbers.py
opcode.py operator.py optparse.py os.py pathlib.py pdb.py pickle.py pickletools.py pkgutil.py
platform.py plistlib.py poplib.py posixpath.py pprint.py profile.py pstats.py pty.py py_compile.py
pyclbr.py pydoc.py queue.py quopri.py random.py re/__init__.py re/_casefix.py re/_compiler.py
re/_constants.py re/_parser.py reprlib.py rlcompleter.py runpy.py sched.py secrets.py selectors.py
shelve.py shlex.py shutil.py signal.py site.py smtplib.py socket.py socketserver.py
sqlite3/__init__.py sqlite3/dbapi2.py sqlite3/dump.py ssl.py stat.py statistics.py string.py
stringprep.py struct.py subprocess.py symtable.py sysconfig.py tabnanny.py tarfile.py tempfile.py
textwrap.py threading.py timeit.py tkinter/__init__.py tkinter/__main__.py tkinter/colorchooser.py
tkinter/commondialog.py tkinter/constants.py tkinter/dialog.py tkinter/dnd.py tkinter/filedialog.py
tkinter/font.py tkinter/messagebox.py tkinter/scrolledtext.py tkinter/simpledialog.py tkinter/tix.py
tkinter/ttk.py token.py tokenize.py tomllib/__init__.py tomllib/_parser.py tomllib/_re.py
tomllib/_types.py trace.py traceback.py tracemalloc.py tty.py turtle.py types.py typing.py
unittest/__init__.py unittest/__main__.py unittest/_log.py unittest/async_case.py unittest/case.py
unittest/loader.py unittest/main.py unittest/mock.py unittest/result.py unittest/runner.py
unittest/signals.py unittest/suite.py unittest/util.py urllib/error.py urllib/parse.py
urllib/request.py urllib/response.py urllib/robotparser.py uuid.py venv/__init__.py venv/__main__.py
warnings.py wave.py weakref.py webbrowser.py wsgiref/__init__.py wsgiref/handlers.py
wsgiref/headers.py wsgiref/simple_server.py wsgiref/types.py wsgiref/util.py wsgiref/validate.py
xml/__init__.py xml/dom/NodeFilter.py xml/dom/__init__.py xml/dom/domreg.py xml/dom/expatbuilder.py
xml/dom/minicompat.py xml/dom/minidom.py xml/dom/pulldom.py xml/dom/xmlbuilder.py
xml/etree/ElementInclude.py xml/etree/ElementPath.py xml/etree/ElementTree.py xml/etree/__init__.py
xml/etree/cElementTree.py xml/parsers/__init__.py xml/parsers/expat.py xml/sax/__init__.py
xml/sax/_exceptions.py xml/sax/expatreader.py xml/sax/handler.py xml/sax/saxutils.py
xml/sax/xmlreader.py xmlrpc/__init__.py xmlrpc/client.py xmlrpc/server.py zipapp.py zipfile.py
zipimport.py zoneinfo/__init__.py zoneinfo/_common.py zoneinfo/_tzpath.py zoneinfo/_zoneinfo.py
""".split()
)
