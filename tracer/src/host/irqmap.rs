//! Which interrupts belong to which network device, from sysfs.
//!
//! A NIC's queue interrupts are rarely named after the netdev (virtio-net's receive vector is
//! `virtio2-input.0`), so the map follows `/sys/class/net/<dev>/device` to the bus device and
//! reads its `msi_irqs/` (MSI/MSI-X) or `irq` (legacy) entries; names come from
//! `/proc/interrupts` (or `/sys/kernel/irq/<n>/actions`).

use std::{collections::HashMap, fs, path::Path};

/// A network device's interrupt, from sysfs .
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IrqDevice {
    /// The netdev, e.g. `eth0`.
    pub dev: String,
    /// The interrupt's action name, e.g. `virtio2-input.0`.
    pub name: String,
}

/// Network devices of this host, by name, and the IRQs of each.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IrqMap {
    /// IRQ number -> device and interrupt name.
    pub irqs: HashMap<u32, IrqDevice>,
    /// Every network device name, sorted.
    pub devices: Vec<String>,
}

impl IrqMap {
    /// Reads the running system's map.
    pub fn from_system() -> Self {
        let names = fs::read_to_string("/proc/interrupts")
            .map(|text| super::procfs::parse_interrupts(&text))
            .unwrap_or_default();
        Self::from_sysfs(Path::new("/sys"), &names)
    }

    /// Reads the map under a sysfs root; `names` are the IRQ action names by number.
    pub fn from_sysfs(sys: &Path, names: &HashMap<u32, String>) -> Self {
        let mut map = IrqMap::default();
        let Ok(entries) = fs::read_dir(sys.join("class/net")) else {
            return map;
        };
        for entry in entries.flatten() {
            let dev = entry.file_name().to_string_lossy().into_owned();
            map.devices.push(dev.clone());
            let Ok(device) = fs::canonicalize(entry.path().join("device")) else {
                continue;
            };
            for irq in device_irqs(&device) {
                let name = names
                    .get(&irq)
                    .cloned()
                    .or_else(|| {
                        let actions =
                            fs::read_to_string(sys.join(format!("kernel/irq/{irq}/actions")))
                                .ok()?;
                        Some(actions.trim().to_owned()).filter(|name| !name.is_empty())
                    })
                    .unwrap_or_else(|| format!("irq{irq}"));
                map.irqs.insert(
                    irq,
                    IrqDevice {
                        dev: dev.clone(),
                        name,
                    },
                );
            }
        }
        map.devices.sort();
        map
    }

    /// Whether a network device of this name exists.
    pub fn has_device(&self, dev: &str) -> bool {
        self.devices.iter().any(|known| known == dev)
    }
}

/// IRQs of a bus device: its own or its parent's `msi_irqs/` (virtio sits below the PCI
/// function that owns the vectors), else a legacy `irq` line.
fn device_irqs(device: &Path) -> Vec<u32> {
    for dir in device.ancestors().take(3) {
        if let Ok(entries) = fs::read_dir(dir.join("msi_irqs")) {
            let mut irqs: Vec<u32> = entries
                .flatten()
                .filter_map(|entry| entry.file_name().to_str()?.parse().ok())
                .collect();
            if !irqs.is_empty() {
                irqs.sort_unstable();
                return irqs;
            }
        }
    }
    for dir in device.ancestors().take(3) {
        if let Some(irq) = fs::read_to_string(dir.join("irq"))
            .ok()
            .and_then(|text| text.trim().parse().ok())
            && irq != 0
        {
            return vec![irq];
        }
    }
    Vec::new()
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::symlink;

    use super::*;

    #[test]
    fn follows_virtio_below_its_pci_function() {
        let sys = tempfile::tempdir().unwrap();
        let root = sys.path();
        let pci = root.join("devices/pci0000:00/0000:00:03.0");
        fs::create_dir_all(pci.join("virtio2/net/eth0")).unwrap();
        fs::create_dir_all(pci.join("msi_irqs")).unwrap();
        for irq in ["37", "38", "39"] {
            fs::write(pci.join("msi_irqs").join(irq), "msix").unwrap();
        }
        fs::create_dir_all(root.join("devices/virtual/net/lo")).unwrap();
        fs::create_dir_all(root.join("class/net")).unwrap();
        symlink(pci.join("virtio2/net/eth0"), root.join("class/net/eth0")).unwrap();
        symlink(pci.join("virtio2"), pci.join("virtio2/net/eth0/device")).unwrap();
        symlink(
            root.join("devices/virtual/net/lo"),
            root.join("class/net/lo"),
        )
        .unwrap();
        fs::create_dir_all(root.join("kernel/irq/39")).unwrap();
        fs::write(root.join("kernel/irq/39/actions"), "virtio2-output.0\n").unwrap();

        let names = HashMap::from([(38, "virtio2-input.0".to_owned())]);
        let map = IrqMap::from_sysfs(root, &names);
        assert_eq!(map.devices, vec!["eth0", "lo"]);
        assert_eq!(map.irqs.len(), 3);
        assert_eq!(
            map.irqs[&38],
            IrqDevice {
                dev: "eth0".into(),
                name: "virtio2-input.0".into()
            }
        );
        assert_eq!(map.irqs[&39].name, "virtio2-output.0");
        assert_eq!(map.irqs[&37].name, "irq37");
        assert!(map.has_device("lo") && !map.has_device("eth9"));
    }
}
