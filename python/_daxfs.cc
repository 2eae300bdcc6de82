// daxfs._daxfs: the C++ half of the Python package (python/daxfs/ is the
// rest). It exposes the read side of libdaxfs and the safetensors parser;
// paths arrive as bytes (the Python layer applies os.fsencode).
//
// Zero copy: Mapping exports a read-only buffer that points into the
// image's mapping and holds a shared_ptr to the Image, so every memoryview,
// numpy array or torch tensor made from it keeps the mapping alive.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>
#include <sys/stat.h>

#include <memory>
#include <string>

#include "daxfs/image.h"
#include "daxfs/prefetch.h"
#include "daxfs/safetensors.h"

namespace py = pybind11;

namespace {

using ImagePtr = std::shared_ptr<const daxfs::Image>;

py::handle g_safetensors_error;

[[noreturn]] void RaiseOSError(const daxfs::Status& s, const std::string& filename = {}) {
  // Messages and names carry paths, which need not be UTF-8: decode them as
  // os.fsdecode does (surrogateescape), never as strict UTF-8.
  auto fs_str = [](const std::string& b) {
    py::object o = py::reinterpret_steal<py::object>(
        PyUnicode_DecodeFSDefaultAndSize(b.data(), static_cast<Py_ssize_t>(b.size())));
    if (!o) throw py::error_already_set();
    return o;
  };
  py::object msg = fs_str(s.message());
  py::object exc;
  if (filename.empty()) {
    exc = py::reinterpret_steal<py::object>(
        PyObject_CallFunction(PyExc_OSError, "iO", s.errno_value(), msg.ptr()));
  } else {
    py::object name = fs_str(filename);
    exc = py::reinterpret_steal<py::object>(
        PyObject_CallFunction(PyExc_OSError, "iOO", s.errno_value(), msg.ptr(), name.ptr()));
  }
  if (!exc) throw py::error_already_set();
  PyErr_SetObject(reinterpret_cast<PyObject*>(Py_TYPE(exc.ptr())), exc.ptr());
  throw py::error_already_set();
}

template <typename T>
T Check(daxfs::Result<T> r, const std::string& filename = {}) {
  if (!r.ok()) RaiseOSError(r.status(), filename);
  return std::move(r).value();
}

void CheckStatus(const daxfs::Status& s, const std::string& filename = {}) {
  if (!s.ok()) RaiseOSError(s, filename);
}

// A read-only byte range of an image's mapping that keeps the image alive.
class Mapping {
 public:
  Mapping(ImagePtr image, std::span<const std::byte> bytes)
      : image_(std::move(image)), bytes_(bytes) {}
  // File data: the pin keeps an object-store image's object mapped.
  Mapping(ImagePtr image, daxfs::PinnedData data)
      : image_(std::move(image)), bytes_(data.bytes), pin_(std::move(data.owner)) {}
  const ImagePtr& image() const { return image_; }
  std::span<const std::byte> bytes() const { return bytes_; }
  // Set for object-store file data (its own mapping, not the region's).
  const std::shared_ptr<const void>& pin() const { return pin_; }

 private:
  ImagePtr image_;
  std::span<const std::byte> bytes_;
  std::shared_ptr<const void> pin_;
};

class PyImage {
 public:
  PyImage(const std::string& spec, bool verify) {
    daxfs::OpenOptions o;
    o.verify_metadata = verify;
    daxfs::Result<ImagePtr> r = daxfs::Status::OK();
    {
      py::gil_scoped_release unlocked;  // memfd:SOCKET talks to a server
      r = daxfs::Image::Open(spec, o);
    }
    image_ = Check(std::move(r), spec);
  }

  const daxfs::Image& image() const { return *image_; }
  const ImagePtr& ptr() const { return image_; }

  daxfs::Ino Resolve(const std::string& path) const {
    return Check(image_->resolve(path), path);
  }
  daxfs::Ino RegularFile(const std::string& path) const {
    const daxfs::Ino ino = Resolve(path);
    const daxfs::Attr a = Check(image_->stat(ino), path);
    if (S_ISDIR(a.mode)) RaiseOSError(daxfs::Status::IsDirectory("is a directory"), path);
    if (!S_ISREG(a.mode))
      RaiseOSError(daxfs::Status::InvalidArgument(std::string("not a regular file (") +
                                                  daxfs::FileTypeName(a.mode) + ")"),
                   path);
    return ino;
  }

 private:
  ImagePtr image_;
};

py::tuple StatTuple(const daxfs::Attr& a) {
  return py::make_tuple(a.ino, a.mode, a.nlink, a.uid, a.gid, a.size, a.blocks, a.mtime_sec,
                        a.mtime_nsec, a.rdev_major, a.rdev_minor);
}

py::tuple TensorTuple(const daxfs::safetensors::Tensor& t) {
  py::tuple shape(t.shape.size());
  for (size_t i = 0; i < t.shape.size(); ++i) shape[i] = py::int_(t.shape[i]);
  return py::make_tuple(py::str(t.name), py::str(std::string(daxfs::safetensors::DTypeName(t.dtype))),
                        shape, t.file_offset, t.end - t.begin);
}

// (header_length, data_offset, [(name, dtype, shape, file_offset, nbytes)], {metadata})
py::tuple HeaderTuple(const daxfs::safetensors::Header& h) {
  py::list tensors;
  for (const auto& t : h.tensors) tensors.append(TensorTuple(t));
  py::dict meta;
  for (const auto& [k, v] : h.metadata) meta[py::str(k)] = py::str(v);
  return py::make_tuple(h.header_length, h.data_offset, tensors, meta);
}

[[noreturn]] void RaiseSafetensors(const daxfs::Status& s) {
  PyErr_SetString(g_safetensors_error.ptr(), s.message().c_str());
  throw py::error_already_set();
}

}  // namespace

PYBIND11_MODULE(_daxfs, m) {
  m.doc() = "libdaxfs bindings (use the daxfs package)";
  // Kept for the life of the process (never freed: no static destructor
  // runs after the interpreter is gone).
  PyObject* error = PyErr_NewException("daxfs._daxfs.SafetensorsError", PyExc_ValueError, nullptr);
  if (error == nullptr) throw py::error_already_set();
  g_safetensors_error = error;
  m.add_object("SafetensorsError", py::reinterpret_borrow<py::object>(error));

  py::class_<Mapping>(m, "Mapping", py::buffer_protocol())
      .def_buffer([](const Mapping& b) -> py::buffer_info {
        static const std::byte kEmpty{};
        const void* p = b.bytes().empty() ? &kEmpty : b.bytes().data();
        return py::buffer_info(const_cast<void*>(p), 1, "B", 1,
                               {static_cast<py::ssize_t>(b.bytes().size())}, {1}, true);
      })
      .def("__len__", [](const Mapping& b) { return b.bytes().size(); })
      .def_property_readonly("address", [](const Mapping& b) {
        return reinterpret_cast<uintptr_t>(b.bytes().data());
      })
      .def("prefetch", [](const Mapping& b, uint64_t offset, uint64_t length, bool wait) {
        const auto all = b.bytes();
        if (offset > all.size()) offset = all.size();
        if (length > all.size() - offset) length = all.size() - offset;
        daxfs::Status s;
        {
          py::gil_scoped_release unlocked;
          const auto mode = wait ? daxfs::PrefetchMode::kPopulate : daxfs::PrefetchMode::kWillNeed;
          const auto range = all.subspan(offset, length);
          s = b.pin() ? daxfs::Prefetch(daxfs::PinnedData{all, b.pin()}, range, mode)
                      : daxfs::Prefetch(b.image()->region(), range, mode);
        }
        CheckStatus(s);
      }, py::arg("offset") = 0, py::arg("length") = UINT64_MAX, py::arg("wait") = true);

  py::class_<PyImage>(m, "Image")
      .def(py::init<const std::string&, bool>(), py::arg("spec"), py::arg("verify") = false)
      .def("resolve", &PyImage::Resolve)
      .def("stat", [](const PyImage& self, const std::string& path) {
        return StatTuple(Check(self.image().stat(self.Resolve(path)), path));
      })
      .def("scandir", [](const PyImage& self, const std::string& path) {
        const daxfs::Ino ino = self.Resolve(path);
        daxfs::Directory dir = Check(self.image().opendir(ino), path);
        py::list out;
        for (size_t i = 0; i < dir.size(); ++i) {
          daxfs::DirEntry e = Check(dir.entry(i), path);
          out.append(py::make_tuple(py::bytes(e.name.data(), e.name.size()), e.ino, e.mode));
        }
        return out;
      })
      .def("readlink", [](const PyImage& self, const std::string& path) {
        std::string_view t = Check(self.image().readlink(self.Resolve(path)), path);
        return py::bytes(t.data(), t.size());
      })
      .def("mapping", [](const PyImage& self, const std::string& path) {
        const daxfs::Ino ino = self.RegularFile(path);
        return Mapping(self.ptr(), Check(self.image().pin(ino), path));
      })
      .def("region_mapping", [](const PyImage& self) {
        return Mapping(self.ptr(), self.image().region().bytes());
      })
      .def("region_name", [](const PyImage& self) { return self.image().region().name(); })
      .def("check_region", [](const PyImage& self) { CheckStatus(self.image().region().status()); })
      .def("info", [](const PyImage& self) {
        const daxfs::ImageInfo& i = self.image().info();
        py::dict d;
        d["region_size"] = i.region_size;
        d["total_size"] = i.total_size;
        d["inode_count"] = i.inode_count;
        d["file_count"] = i.file_count;
        d["label"] = i.label;
        d["build_time"] = i.build_time;
        d["features"] = daxfs::FeatureNames(i);
        return d;
      })
      .def("safetensors", [](const PyImage& self, const std::string& path) {
        const daxfs::Ino ino = self.RegularFile(path);
        auto data = Check(self.image().pin(ino), path);
        auto h = daxfs::safetensors::Parse(data.bytes);
        if (!h.ok()) RaiseSafetensors(h.status().WithContext(path));
        return py::make_tuple(Mapping(self.ptr(), std::move(data)), HeaderTuple(*h));
      });

  // Parses the safetensors file held in any buffer (bytes, mmap, memoryview).
  m.def("parse_safetensors", [](py::buffer buf) {
    py::buffer_info info = buf.request();
    if (info.ndim != 1 || info.itemsize != 1 || (info.ndim == 1 && info.strides[0] != 1))
      throw py::value_error("a contiguous byte buffer is needed");
    std::span<const std::byte> bytes(static_cast<const std::byte*>(info.ptr),
                                     static_cast<size_t>(info.size));
    auto h = daxfs::safetensors::Parse(bytes);
    if (!h.ok()) RaiseSafetensors(h.status());
    return HeaderTuple(*h);
  });
}
