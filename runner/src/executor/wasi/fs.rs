//! `wasi:filesystem` served from a stage's [`Tree`], with chroot semantics.
//!
//! wasmtime-wasi's own filesystem refuses absolute symlinks and can only serve host
//! directories; a stage's root filesystem here is kiln's in-memory tree, whose file contents
//! live in the context, in layers extracted to scratch, or in memory. This module implements
//! the `types` and `preopens` interfaces over that tree:
//!
//! - the guest's one preopen is `/`, the stage root; every path resolves inside the tree
//!   (absolute symlinks start at the stage root, `..` stops there), so no host path is ever
//!   named;
//! - a file opened for writing is first copied into a scratch file owned by this step
//!   (copy-on-write), so earlier stages and base images are never modified;
//! - new entries belong to the step's user, with Docker's default modes (0644 files, 0755
//!   directories) and the step's normalised mtime;
//! - every change is recorded in the tree, so the snapshot after the step costs what changed;
//! - every byte a write adds is counted against the step's layer limit before it is written
//!   ([`super::layer_budget`]): a write that does not fit fails as on a full disk.
//!
//! This module never opens a host path other than the scratch files it created and the
//! contents the tree already references.

use std::collections::BTreeMap;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use wasmtime::component::{HasData, Resource, ResourceTable};
use wasmtime_wasi::p2::{
    DynInputStream, DynOutputStream, InputStream, OutputStream, Pollable, StreamError, StreamResult,
};

use super::layer_budget::{Full, LayerBudget, Refusal};
use crate::rootfs::{self, Components, Content, FileData, Kind, Meta, Node, PathError, Tree};
use crate::scratch::Scratch;

pub(crate) mod bindings {
    wasmtime::component::bindgen!({
        path: "../wit/sandbox",
        world: "kiln:sandbox/rootfs",
        trappable_error_type: {
            "wasi:filesystem/types.error-code" => super::FsError,
        },
        imports: { default: trappable },
        with: {
            "wasi:io": wasmtime_wasi::p2::bindings::sync::io,
            "wasi:clocks": wasmtime_wasi::p2::bindings::clocks,
            "wasi:filesystem/types.descriptor": super::Descriptor,
            "wasi:filesystem/types.directory-entry-stream": super::DirEntries,
            "kiln:sandbox/spawn.child": crate::executor::wasi::spawn::Child,
        },
        require_store_data_send: true,
    });
}

use bindings::wasi::filesystem::{preopens, types};
use types::{
    Advice, DescriptorFlags, DescriptorStat, DescriptorType, DirectoryEntry, ErrorCode, Filesize, MetadataHashValue,
    NewTimestamp, OpenFlags, PathFlags,
};

/// A filesystem error, or a trap.
pub type FsError = wasmtime_wasi::TrappableError<ErrorCode>;
type FsResult<T> = Result<T, FsError>;

/// The stage filesystem while a program runs.
pub struct RootFs {
    /// The stage's tree (moved in for the step, moved back out after).
    pub tree: Tree,
    /// Where written file contents go.
    pub scratch: Arc<Scratch>,
    /// Owner of entries the program creates (the step's USER).
    pub owner: (u32, u32),
    /// mtime given to what the program creates or modifies.
    pub mtime: i64,
    /// The files this step created (written in place without another copy), and how many
    /// bytes they may come to: the scratch's layer limit.
    pub(crate) budget: LayerBudget,
}

impl RootFs {
    /// Serve `tree` to a program running as `owner`; a write that would take the step's
    /// files past the layer limit is refused and recorded in `refusal`.
    pub(crate) fn new(tree: Tree, scratch: Arc<Scratch>, owner: (u32, u32), mtime: i64, refusal: Arc<Refusal>) -> Self {
        let budget = LayerBudget::new(scratch.layer_limit(), refusal);
        RootFs { tree, scratch, owner, mtime, budget }
    }

    /// Make room for `file`, a scratch file this step created or is about to, to be `size`
    /// bytes long; `path` is where it is in the tree (for the refusal).
    pub(crate) fn grow(&mut self, file: &Path, size: u64, path: &str) -> Result<(), Full> {
        self.budget.grow(&self.tree, file, size, path)
    }
}

/// The error of a write that does not fit in the step's layer: a full disk (see
/// [`super::layer_budget`] for why not EFBIG).
pub(crate) fn full_disk() -> std::io::Error {
    std::io::Error::from(std::io::ErrorKind::StorageFull)
}

/// `/a/b` for the components `a`, `b`.
fn shown(path: &[String]) -> String {
    format!("/{}", rootfs::join(path))
}

/// An open file or directory: its canonical path in the tree.
pub struct Descriptor {
    path: Components,
    dir: bool,
    flags: DescriptorFlags,
}

/// A directory listing being read.
pub struct DirEntries(std::vec::IntoIter<DirectoryEntry>);

/// What the filesystem host functions see: the resource table and the stage filesystem.
pub struct FsView<'a> {
    /// The store's resource table (shared with wasmtime-wasi's streams).
    pub table: &'a mut ResourceTable,
    /// The stage filesystem, locked for the length of one call (programs of a step may run
    /// at the same time).
    pub fs: std::sync::MutexGuard<'a, RootFs>,
    /// The same filesystem, for streams that write to it after the call returns.
    pub root: &'a Arc<Mutex<RootFs>>,
}

/// `HasData` marker for [`add_to_linker`].
pub struct HasFs;

impl HasData for HasFs {
    type Data<'a> = FsView<'a>;
}

/// Add kiln's `wasi:filesystem` to a linker (after wasmtime-wasi's, with shadowing allowed,
/// so these definitions replace its own).
pub fn add_to_linker<T: Send + 'static>(
    linker: &mut wasmtime::component::Linker<T>,
    view: fn(&mut T) -> FsView<'_>,
) -> wasmtime::Result<()> {
    types::add_to_linker::<T, HasFs>(linker, view)?;
    preopens::add_to_linker::<T, HasFs>(linker, view)?;
    Ok(())
}

/// Resource-table failures are host bugs: they trap rather than become guest errors.
trait Table<T> {
    fn trap(self) -> FsResult<T>;
}

impl<T> Table<T> for Result<T, wasmtime::component::ResourceTableError> {
    fn trap(self) -> FsResult<T> {
        self.map_err(FsError::trap)
    }
}

fn code(e: ErrorCode) -> FsError {
    e.into()
}

fn path_error(e: PathError) -> FsError {
    code(match e {
        PathError::NotFound(_) => ErrorCode::NoEntry,
        PathError::NotADirectory(_) => ErrorCode::NotDirectory,
        PathError::Loop(_) => ErrorCode::Loop,
        PathError::Escapes { .. } => ErrorCode::NotPermitted,
        PathError::TooLong { .. } => ErrorCode::NameTooLong,
    })
}

fn io_error(e: std::io::Error) -> FsError {
    code(error_code_of(&e))
}

/// The WASI error code a program sees for a failure of kiln's own file operations (a full
/// disk must read as a full disk, not as an I/O error).
fn error_code_of(e: &std::io::Error) -> ErrorCode {
    match e.kind() {
        std::io::ErrorKind::NotFound => ErrorCode::NoEntry,
        std::io::ErrorKind::PermissionDenied => ErrorCode::Access,
        std::io::ErrorKind::StorageFull => ErrorCode::InsufficientSpace,
        std::io::ErrorKind::QuotaExceeded => ErrorCode::Quota,
        std::io::ErrorKind::FileTooLarge => ErrorCode::FileTooLarge,
        _ => ErrorCode::Io,
    }
}

fn datetime(seconds: i64) -> wasmtime_wasi::p2::bindings::clocks::wall_clock::Datetime {
    wasmtime_wasi::p2::bindings::clocks::wall_clock::Datetime { seconds: seconds.max(0) as u64, nanoseconds: 0 }
}

fn descriptor_type(node: &Node) -> DescriptorType {
    match node.kind {
        Kind::Dir(_) => DescriptorType::Directory,
        Kind::File(_) => DescriptorType::RegularFile,
        Kind::Symlink(_) => DescriptorType::SymbolicLink,
        Kind::CharDevice { .. } => DescriptorType::CharacterDevice,
        Kind::BlockDevice { .. } => DescriptorType::BlockDevice,
        Kind::Fifo => DescriptorType::Fifo,
    }
}

fn stat_of(node: &Node) -> DescriptorStat {
    let size = match &node.kind {
        Kind::File(data) => data.len(),
        Kind::Symlink(target) => target.len() as u64,
        _ => 0,
    };
    DescriptorStat {
        type_: descriptor_type(node),
        link_count: 1,
        size,
        data_access_timestamp: Some(datetime(node.meta.mtime)),
        data_modification_timestamp: Some(datetime(node.meta.mtime)),
        status_change_timestamp: Some(datetime(node.meta.mtime)),
    }
}

impl FsView<'_> {
    fn desc(&self, fd: &Resource<Descriptor>) -> FsResult<&Descriptor> {
        self.table.get(fd).trap()
    }

    /// Resolve `path` relative to the directory `fd`.
    fn resolve(&self, fd: &Resource<Descriptor>, path: &str, follow: bool) -> FsResult<Components> {
        let d = self.desc(fd)?;
        if !d.dir {
            return Err(code(ErrorCode::NotDirectory));
        }
        // wasi-libc hands us paths relative to the preopen; an absolute path means the root.
        self.fs.tree.resolve_dest_with(&d.path, path, follow).map_err(path_error)
    }

    fn node(&self, path: &[String]) -> FsResult<&Node> {
        self.fs.tree.get(path).ok_or_else(|| code(ErrorCode::NoEntry))
    }

    fn new_meta(&self, mode: u32) -> Meta {
        Meta { mode, uid: self.fs.owner.0, gid: self.fs.owner.1, mtime: self.fs.mtime }
    }

    fn parent_must_be_dir(&self, path: &[String]) -> FsResult<()> {
        let parent = &path[..path.len().saturating_sub(1)];
        match self.fs.tree.get(parent) {
            Some(n) if n.is_dir() => Ok(()),
            Some(_) => Err(code(ErrorCode::NotDirectory)),
            None => Err(code(ErrorCode::NoEntry)),
        }
    }

    /// Make the file at `path` writable by this step: copy its content into a scratch file
    /// this step owns (once), and return that file's path.
    fn writable(&mut self, path: &[String]) -> FsResult<PathBuf> {
        let node = self.node(path)?.clone();
        let Kind::File(data) = &node.kind else { return Err(code(ErrorCode::IsDirectory)) };
        if let Content::Scratch(p) = &data.content
            && self.fs.budget.owns(p)
        {
            return Ok(p.clone());
        }
        // The copy goes into the layer whole: room for it is made before it is written.
        let copy = self.fs.scratch.new_path();
        self.grow(path, &copy, data.len())?;
        let mut reader = data.content.open().map_err(io_error)?;
        let size = self.fs.scratch.store_at(&copy, &mut reader).map_err(io_error)?;
        self.grow(path, &copy, size)?;
        let meta = Meta { mtime: self.fs.mtime, ..node.meta };
        let replaced =
            Node { meta, kind: Kind::File(Arc::new(FileData { content: Content::Scratch(copy.clone()), size })) };
        self.fs.tree.insert(path, replaced).map_err(path_error)?;
        Ok(copy)
    }

    /// Make room for `file`, the scratch file of the tree's `path`, to be `size` bytes long.
    fn grow(&mut self, path: &[String], file: &Path, size: u64) -> FsResult<()> {
        self.fs.grow(file, size, &shown(path)).map_err(|Full| code(ErrorCode::InsufficientSpace))
    }

    fn empty_file(&mut self, path: &[String], mode: u32) -> FsResult<()> {
        let (file, size) = self.fs.scratch.store(&mut std::io::empty()).map_err(io_error)?;
        self.grow(path, &file, size)?;
        let node = Node {
            meta: self.new_meta(mode),
            kind: Kind::File(Arc::new(FileData { content: Content::Scratch(file), size })),
        };
        self.fs.tree.insert(path, node).map_err(path_error)
    }

    /// Record that a file's content changed (for the snapshot) and touch its mtime.
    /// The file also gets a fresh identity: loaded programs are remembered by the identity
    /// of their file data, and content written in place must not be mistaken for what was
    /// there before.
    fn touched(&mut self, path: &[String]) -> FsResult<()> {
        let node = self.node(path)?.clone();
        let kind = match &node.kind {
            Kind::File(data) => Kind::File(Arc::new(FileData { content: data.content.clone(), size: data.size })),
            other => other.clone(),
        };
        let meta = Meta { mtime: self.fs.mtime, ..node.meta };
        self.fs.tree.insert(path, Node { meta, kind }).map_err(path_error)
    }
}

impl types::Host for FsView<'_> {
    fn convert_error_code(&mut self, err: FsError) -> wasmtime::Result<ErrorCode> {
        err.downcast()
    }

    fn filesystem_error_code(
        &mut self,
        err: Resource<wasmtime_wasi::p2::bindings::sync::io::streams::Error>,
    ) -> wasmtime::Result<Option<ErrorCode>> {
        let err = self.table.get(&err)?;
        Ok(err.downcast_ref::<std::io::Error>().map(error_code_of))
    }
}

impl types::HostDescriptor for FsView<'_> {
    fn read_via_stream(&mut self, fd: Resource<Descriptor>, offset: Filesize) -> FsResult<Resource<DynInputStream>> {
        let path = self.desc(&fd)?.path.clone();
        let Kind::File(data) = &self.node(&path)?.kind else { return Err(code(ErrorCode::IsDirectory)) };
        let stream = FileReader::open(data, offset).map_err(io_error)?;
        self.table.push(Box::new(stream) as DynInputStream).trap()
    }

    fn write_via_stream(&mut self, fd: Resource<Descriptor>, offset: Filesize) -> FsResult<Resource<DynOutputStream>> {
        let path = self.desc(&fd)?.path.clone();
        let file = self.writable(&path)?;
        self.touched(&path)?;
        let stream = FileWriter::open(self.root, &mut self.fs, file, shown(&path), Some(offset)).map_err(io_error)?;
        self.table.push(Box::new(stream) as DynOutputStream).trap()
    }

    fn append_via_stream(&mut self, fd: Resource<Descriptor>) -> FsResult<Resource<DynOutputStream>> {
        let path = self.desc(&fd)?.path.clone();
        let file = self.writable(&path)?;
        self.touched(&path)?;
        let stream = FileWriter::open(self.root, &mut self.fs, file, shown(&path), None).map_err(io_error)?;
        self.table.push(Box::new(stream) as DynOutputStream).trap()
    }

    fn advise(&mut self, _fd: Resource<Descriptor>, _o: Filesize, _l: Filesize, _a: Advice) -> FsResult<()> {
        Ok(())
    }

    fn sync_data(&mut self, _fd: Resource<Descriptor>) -> FsResult<()> {
        Ok(())
    }

    fn get_flags(&mut self, fd: Resource<Descriptor>) -> FsResult<DescriptorFlags> {
        Ok(self.desc(&fd)?.flags)
    }

    fn get_type(&mut self, fd: Resource<Descriptor>) -> FsResult<DescriptorType> {
        let path = self.desc(&fd)?.path.clone();
        Ok(descriptor_type(self.node(&path)?))
    }

    fn set_size(&mut self, fd: Resource<Descriptor>, size: Filesize) -> FsResult<()> {
        let path = self.desc(&fd)?.path.clone();
        let file = self.writable(&path)?;
        self.grow(&path, &file, size)?;
        std::fs::OpenOptions::new().write(true).open(&file).and_then(|f| f.set_len(size)).map_err(io_error)?;
        self.fs.budget.truncated(&file, size);
        self.touched(&path)
    }

    fn set_times(&mut self, fd: Resource<Descriptor>, _atim: NewTimestamp, mtim: NewTimestamp) -> FsResult<()> {
        let path = self.desc(&fd)?.path.clone();
        self.set_mtime(&path, mtim)
    }

    fn read(&mut self, fd: Resource<Descriptor>, len: Filesize, offset: Filesize) -> FsResult<(Vec<u8>, bool)> {
        let path = self.desc(&fd)?.path.clone();
        let Kind::File(data) = &self.node(&path)?.kind else { return Err(code(ErrorCode::IsDirectory)) };
        let mut reader = FileReader::open(data, offset).map_err(io_error)?;
        let mut buf = Vec::new();
        reader.reader.by_ref().take(len.min(64 << 20)).read_to_end(&mut buf).map_err(io_error)?;
        let eof = offset + (buf.len() as u64) >= data.len();
        Ok((buf, eof))
    }

    fn write(&mut self, fd: Resource<Descriptor>, buf: Vec<u8>, offset: Filesize) -> FsResult<Filesize> {
        let path = self.desc(&fd)?.path.clone();
        let file = self.writable(&path)?;
        self.grow(&path, &file, offset.saturating_add(buf.len() as u64))?;
        let mut f = std::fs::OpenOptions::new().write(true).open(&file).map_err(io_error)?;
        f.seek(SeekFrom::Start(offset)).map_err(io_error)?;
        f.write_all(&buf).map_err(io_error)?;
        self.touched(&path)?;
        Ok(buf.len() as u64)
    }

    fn read_directory(&mut self, fd: Resource<Descriptor>) -> FsResult<Resource<DirEntries>> {
        let path = self.desc(&fd)?.path.clone();
        let Kind::Dir(children) = &self.node(&path)?.kind else { return Err(code(ErrorCode::NotDirectory)) };
        let entries: Vec<DirectoryEntry> = children
            .iter()
            .map(|(name, node)| DirectoryEntry { type_: descriptor_type(node), name: name.clone() })
            .collect();
        self.table.push(DirEntries(entries.into_iter())).trap()
    }

    fn sync(&mut self, _fd: Resource<Descriptor>) -> FsResult<()> {
        Ok(())
    }

    fn create_directory_at(&mut self, fd: Resource<Descriptor>, path: String) -> FsResult<()> {
        let target = self.resolve(&fd, &path, false)?;
        if self.fs.tree.get(&target).is_some() {
            return Err(code(ErrorCode::Exist));
        }
        self.parent_must_be_dir(&target)?;
        let meta = self.new_meta(0o755);
        self.fs.tree.insert(&target, Node::dir(meta)).map_err(path_error)
    }

    fn stat(&mut self, fd: Resource<Descriptor>) -> FsResult<DescriptorStat> {
        let path = self.desc(&fd)?.path.clone();
        Ok(stat_of(self.node(&path)?))
    }

    fn stat_at(&mut self, fd: Resource<Descriptor>, flags: PathFlags, path: String) -> FsResult<DescriptorStat> {
        let target = self.resolve(&fd, &path, flags.contains(PathFlags::SYMLINK_FOLLOW))?;
        Ok(stat_of(self.node(&target)?))
    }

    fn set_times_at(
        &mut self,
        fd: Resource<Descriptor>,
        flags: PathFlags,
        path: String,
        _atim: NewTimestamp,
        mtim: NewTimestamp,
    ) -> FsResult<()> {
        let target = self.resolve(&fd, &path, flags.contains(PathFlags::SYMLINK_FOLLOW))?;
        self.set_mtime(&target, mtim)
    }

    fn link_at(
        &mut self,
        fd: Resource<Descriptor>,
        flags: PathFlags,
        old_path: String,
        new_fd: Resource<Descriptor>,
        new_path: String,
    ) -> FsResult<()> {
        let old = self.resolve(&fd, &old_path, flags.contains(PathFlags::SYMLINK_FOLLOW))?;
        let new = self.resolve(&new_fd, &new_path, false)?;
        let node = self.node(&old)?.clone();
        if node.is_dir() {
            return Err(code(ErrorCode::NotPermitted));
        }
        if self.fs.tree.get(&new).is_some() {
            return Err(code(ErrorCode::Exist));
        }
        self.parent_must_be_dir(&new)?;
        self.fs.tree.insert(&new, node).map_err(path_error)
    }

    fn open_at(
        &mut self,
        fd: Resource<Descriptor>,
        flags: PathFlags,
        path: String,
        oflags: OpenFlags,
        dflags: DescriptorFlags,
    ) -> FsResult<Resource<Descriptor>> {
        let target = self.resolve(&fd, &path, flags.contains(PathFlags::SYMLINK_FOLLOW))?;
        let exists = self.fs.tree.get(&target).is_some();
        if oflags.contains(OpenFlags::CREATE) {
            if exists && oflags.contains(OpenFlags::EXCLUSIVE) {
                return Err(code(ErrorCode::Exist));
            }
            if !exists {
                if oflags.contains(OpenFlags::DIRECTORY) {
                    return Err(code(ErrorCode::NoEntry));
                }
                self.parent_must_be_dir(&target)?;
                self.empty_file(&target, 0o644)?;
            }
        } else if !exists {
            return Err(code(ErrorCode::NoEntry));
        }
        let node = self.node(&target)?;
        let dir = node.is_dir();
        if matches!(node.kind, Kind::Symlink(_)) {
            // Opening a link itself (NOFOLLOW) is ELOOP on POSIX.
            return Err(code(ErrorCode::Loop));
        }
        if oflags.contains(OpenFlags::DIRECTORY) && !dir {
            return Err(code(ErrorCode::NotDirectory));
        }
        if dir && dflags.contains(DescriptorFlags::WRITE) {
            return Err(code(ErrorCode::IsDirectory));
        }
        if oflags.contains(OpenFlags::TRUNCATE) && !dir {
            let meta = node.meta;
            self.empty_file(&target, meta.mode)?;
            let mut meta = meta;
            meta.mtime = self.fs.mtime;
            self.fs.tree.set_meta(&target, meta).map_err(path_error)?;
        }
        let desc = Descriptor { path: target, dir, flags: dflags };
        self.table.push(desc).trap()
    }

    fn readlink_at(&mut self, fd: Resource<Descriptor>, path: String) -> FsResult<String> {
        let target = self.resolve(&fd, &path, false)?;
        match &self.node(&target)?.kind {
            Kind::Symlink(to) => Ok(to.clone()),
            _ => Err(code(ErrorCode::Invalid)),
        }
    }

    fn remove_directory_at(&mut self, fd: Resource<Descriptor>, path: String) -> FsResult<()> {
        let target = self.resolve(&fd, &path, false)?;
        match &self.node(&target)?.kind {
            Kind::Dir(children) if !children.is_empty() => Err(code(ErrorCode::NotEmpty)),
            Kind::Dir(_) if target.is_empty() => Err(code(ErrorCode::Busy)),
            Kind::Dir(_) => {
                self.fs.tree.remove(&target);
                Ok(())
            }
            _ => Err(code(ErrorCode::NotDirectory)),
        }
    }

    fn rename_at(
        &mut self,
        fd: Resource<Descriptor>,
        old_path: String,
        new_fd: Resource<Descriptor>,
        new_path: String,
    ) -> FsResult<()> {
        let old = self.resolve(&fd, &old_path, false)?;
        let new = self.resolve(&new_fd, &new_path, false)?;
        if old.is_empty() || new.starts_with(&old) && new.len() > old.len() {
            return Err(code(ErrorCode::Invalid));
        }
        if old == new {
            return Ok(());
        }
        let node = self.node(&old)?.clone();
        self.parent_must_be_dir(&new)?;
        match self.fs.tree.get(&new) {
            Some(existing) if existing.is_dir() && !node.is_dir() => return Err(code(ErrorCode::IsDirectory)),
            Some(existing) if !existing.is_dir() && node.is_dir() => return Err(code(ErrorCode::NotDirectory)),
            Some(Node { kind: Kind::Dir(children), .. }) if !children.is_empty() => {
                return Err(code(ErrorCode::NotEmpty));
            }
            Some(_) => {
                self.fs.tree.remove(&new);
            }
            None => {}
        }
        self.fs.tree.remove(&old);
        insert_subtree(&mut self.fs.tree, &new, node).map_err(path_error)
    }

    fn symlink_at(&mut self, fd: Resource<Descriptor>, src_path: String, dest_path: String) -> FsResult<()> {
        let target = self.resolve(&fd, &dest_path, false)?;
        if self.fs.tree.get(&target).is_some() {
            return Err(code(ErrorCode::Exist));
        }
        self.parent_must_be_dir(&target)?;
        // Absolute targets are fine: they resolve inside the stage root.
        let node = Node { meta: self.new_meta(0o777), kind: Kind::Symlink(src_path) };
        self.fs.tree.insert(&target, node).map_err(path_error)
    }

    fn unlink_file_at(&mut self, fd: Resource<Descriptor>, path: String) -> FsResult<()> {
        let target = self.resolve(&fd, &path, false)?;
        if self.node(&target)?.is_dir() {
            return Err(code(ErrorCode::IsDirectory));
        }
        self.fs.tree.remove(&target);
        Ok(())
    }

    fn is_same_object(&mut self, a: Resource<Descriptor>, b: Resource<Descriptor>) -> wasmtime::Result<bool> {
        Ok(self.table.get(&a)?.path == self.table.get(&b)?.path)
    }

    fn metadata_hash(&mut self, fd: Resource<Descriptor>) -> FsResult<MetadataHashValue> {
        let path = self.desc(&fd)?.path.clone();
        self.node(&path)?;
        Ok(hash_path(&path))
    }

    fn metadata_hash_at(
        &mut self,
        fd: Resource<Descriptor>,
        flags: PathFlags,
        path: String,
    ) -> FsResult<MetadataHashValue> {
        let target = self.resolve(&fd, &path, flags.contains(PathFlags::SYMLINK_FOLLOW))?;
        self.node(&target)?;
        Ok(hash_path(&target))
    }

    fn drop(&mut self, fd: Resource<Descriptor>) -> wasmtime::Result<()> {
        self.table.delete(fd)?;
        Ok(())
    }
}

impl FsView<'_> {
    fn set_mtime(&mut self, path: &[String], mtim: NewTimestamp) -> FsResult<()> {
        let mut meta = self.node(path)?.meta;
        meta.mtime = match mtim {
            NewTimestamp::NoChange => return Ok(()),
            // "Now" is the step's normalised time: the wall clock reads SOURCE_DATE_EPOCH.
            NewTimestamp::Now => self.fs.mtime,
            NewTimestamp::Timestamp(t) => t.seconds as i64,
        };
        self.fs.tree.set_meta(path, meta).map_err(path_error)
    }
}

/// Insert a node and, for a directory, record every entry under it as changed (a rename
/// moves a whole subtree into the new layer).
fn insert_subtree(tree: &mut Tree, path: &[String], node: Node) -> Result<(), PathError> {
    let children = match &node.kind {
        Kind::Dir(children) => children.clone(),
        _ => BTreeMap::new(),
    };
    let top = if node.is_dir() { Node::dir(node.meta) } else { node };
    tree.insert(path, top)?;
    for (name, child) in children {
        let mut p = path.to_vec();
        p.push(name);
        insert_subtree(tree, &p, child)?;
    }
    Ok(())
}

fn hash_path(path: &[String]) -> MetadataHashValue {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(rootfs::join(path).as_bytes());
    let lower = u64::from_le_bytes(digest[..8].try_into().expect("8 bytes"));
    let upper = u64::from_le_bytes(digest[8..16].try_into().expect("8 bytes"));
    MetadataHashValue { lower, upper }
}

impl types::HostDirectoryEntryStream for FsView<'_> {
    fn read_directory_entry(&mut self, stream: Resource<DirEntries>) -> FsResult<Option<DirectoryEntry>> {
        Ok(self.table.get_mut(&stream).trap()?.0.next())
    }

    fn drop(&mut self, stream: Resource<DirEntries>) -> wasmtime::Result<()> {
        self.table.delete(stream)?;
        Ok(())
    }
}

impl preopens::Host for FsView<'_> {
    fn get_directories(&mut self) -> wasmtime::Result<Vec<(Resource<Descriptor>, String)>> {
        let root = Descriptor {
            path: Vec::new(),
            dir: true,
            flags: DescriptorFlags::READ | DescriptorFlags::MUTATE_DIRECTORY,
        };
        Ok(vec![(self.table.push(root)?, "/".to_string())])
    }
}

/// A stream reading a file's content from an offset.
struct FileReader {
    reader: Box<dyn Read + Send>,
}

impl FileReader {
    fn open(data: &FileData, offset: u64) -> std::io::Result<Self> {
        let reader: Box<dyn Read + Send> = match &data.content {
            Content::Bytes(bytes) => {
                let start = (offset as usize).min(bytes.len());
                Box::new(std::io::Cursor::new(bytes[start..].to_vec()))
            }
            Content::Scratch(path) => {
                let mut f = std::fs::File::open(path)?;
                f.seek(SeekFrom::Start(offset))?;
                Box::new(f)
            }
            Content::Context(file) => file.snapshot()?.reader(offset)?,
        };
        Ok(FileReader { reader })
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for FileReader {
    async fn ready(&mut self) {}
}

impl InputStream for FileReader {
    fn read(&mut self, size: usize) -> StreamResult<bytes::Bytes> {
        let mut buf = vec![0; size.min(1 << 20)];
        let n = self.reader.read(&mut buf).map_err(|e| StreamError::LastOperationFailed(e.into()))?;
        if n == 0 && size > 0 {
            return Err(StreamError::Closed);
        }
        buf.truncate(n);
        Ok(buf.into())
    }
}

/// A stream writing into a scratch file this step owns, at an offset or appending. Each
/// write is counted against the step's layer limit first (the stream outlives the call that
/// opened it: it locks the filesystem for that, as a filesystem call does).
struct FileWriter {
    file: std::fs::File,
    /// Where the next write goes.
    position: u64,
    /// The scratch file.
    path: PathBuf,
    /// Its path in the tree, when it was opened.
    shown: String,
    root: Arc<Mutex<RootFs>>,
}

impl FileWriter {
    fn open(
        root: &Arc<Mutex<RootFs>>,
        fs: &mut RootFs,
        path: PathBuf,
        shown: String,
        offset: Option<u64>,
    ) -> std::io::Result<Self> {
        let mut file = std::fs::OpenOptions::new().write(true).open(&path)?;
        let position = match offset {
            Some(o) => file.seek(SeekFrom::Start(o))?,
            None => file.seek(SeekFrom::End(0))?,
        };
        // Open, it stays counted even if its name goes: it can still be written.
        fs.budget.writer_opened(&path);
        Ok(FileWriter { file, position, path, shown, root: root.clone() })
    }
}

impl Drop for FileWriter {
    fn drop(&mut self) {
        self.root.lock().unwrap_or_else(|e| e.into_inner()).budget.writer_closed(&self.path);
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for FileWriter {
    async fn ready(&mut self) {}
}

impl OutputStream for FileWriter {
    fn write(&mut self, bytes: bytes::Bytes) -> StreamResult<()> {
        let end = self.position.saturating_add(bytes.len() as u64);
        self.root
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .grow(&self.path, end, &self.shown)
            .map_err(|Full| StreamError::LastOperationFailed(full_disk().into()))?;
        match self.file.write_all(&bytes) {
            Ok(()) => {
                self.position = end;
                Ok(())
            }
            Err(e) => {
                self.position = self.file.stream_position().unwrap_or(end);
                Err(StreamError::LastOperationFailed(e.into()))
            }
        }
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(1 << 20)
    }
}
