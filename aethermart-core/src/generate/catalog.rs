//! The fixed shape of the catalogue: a 3-level category tree, and per leaf what its products
//! are called, what they cost and how many are usually in stock.

/// A leaf category with what it takes to invent plausible products.
pub(crate) struct Leaf {
    pub(crate) name: &'static str,
    /// Short code for SKUs.
    pub(crate) code: &'static str,
    pub(crate) brands: &'static [&'static str],
    pub(crate) nouns: &'static [&'static str],
    /// Whole-unit price range.
    pub(crate) price: (u32, u32),
    /// Typical stock on hand.
    pub(crate) stock: (u32, u32),
}

/// A middle category and its leaves.
pub(crate) struct Branch {
    pub(crate) name: &'static str,
    pub(crate) leaves: &'static [Leaf],
}

/// A root category and its branches.
pub(crate) struct Root {
    pub(crate) name: &'static str,
    pub(crate) branches: &'static [Branch],
}

macro_rules! leaf {
    ($name:literal, $code:literal, [$($b:literal),+], [$($n:literal),+], $lo:literal..$hi:literal, stock $slo:literal..$shi:literal) => {
        Leaf { name: $name, code: $code, brands: &[$($b),+], nouns: &[$($n),+], price: ($lo, $hi), stock: ($slo, $shi) }
    };
}

/// Products live under these roots.
pub(crate) static PRODUCT_TREE: &[Root] = &[
    Root {
        name: "Computers",
        branches: &[
            Branch {
                name: "Gaming PCs",
                leaves: &[
                    leaf!("Entry Gaming PCs", "PCE", ["Aether", "Nova", "Vortex"], ["Starter Rig", "Core Tower", "Arena PC"], 699..1199, stock 5..40),
                    leaf!("Enthusiast Gaming PCs", "PCX", ["Aether", "Titan", "Nebula"], ["Apex Tower", "Hyperion Rig", "Quantum PC"], 1499..4999, stock 2..25),
                    leaf!("Small Form Factor PCs", "SFF", ["Aether", "Cube", "Pixel"], ["Mini Rig", "Compact Core", "Nano Tower"], 899..2499, stock 3..30),
                ],
            },
            Branch {
                name: "Laptops",
                leaves: &[
                    leaf!("Gaming Laptops", "LPG", ["Razor", "Aorus", "Legion", "ROG"], ["Blade 15", "Strix 17", "Raider 16", "Scar 14"], 999..3999, stock 3..40),
                    leaf!("Ultrabooks", "LPU", ["Zen", "Swift", "Spectre", "XPS"], ["Air 13", "Pro 14", "Slim 15"], 799..2299, stock 5..60),
                ],
            },
        ],
    },
    Root {
        name: "Components",
        branches: &[
            Branch {
                name: "Graphics Cards",
                leaves: &[
                    leaf!("NVIDIA Graphics Cards", "GPN", ["ASUS", "MSI", "Gigabyte", "Zotac"], ["RTX 4060", "RTX 4070 Super", "RTX 4080 Super", "RTX 4090"], 299..1999, stock 2..60),
                    leaf!("AMD Graphics Cards", "GPA", ["Sapphire", "PowerColor", "XFX"], ["RX 7600", "RX 7800 XT", "RX 7900 XTX"], 269..1099, stock 3..60),
                ],
            },
            Branch {
                name: "Processors",
                leaves: &[
                    leaf!("Desktop Processors", "CPU", ["AMD", "Intel"], ["Ryzen 5 7600", "Ryzen 7 7800X3D", "Core i5-14600K", "Core i9-14900K"], 179..699, stock 5..120),
                ],
            },
            Branch {
                name: "Memory and Storage",
                leaves: &[
                    leaf!("Memory", "RAM", ["Corsair", "Kingston", "G.Skill", "Crucial"], ["DDR5 32GB Kit", "DDR5 64GB Kit", "DDR4 16GB Kit"], 49..349, stock 20..250),
                    leaf!("Solid State Drives", "SSD", ["Samsung", "WD", "Crucial", "Seagate"], ["NVMe 1TB", "NVMe 2TB", "NVMe 4TB", "SATA 1TB"], 59..399, stock 20..250),
                ],
            },
            Branch {
                name: "Power and Cooling",
                leaves: &[
                    leaf!("Power Supplies", "PSU", ["Corsair", "Seasonic", "be quiet!"], ["750W Gold", "850W Platinum", "1000W Titanium"], 89..349, stock 10..120),
                    leaf!("CPU Coolers", "CLR", ["Noctua", "Arctic", "NZXT"], ["Tower Air Cooler", "240mm AIO", "360mm AIO"], 29..249, stock 10..150),
                ],
            },
        ],
    },
    Root {
        name: "Peripherals",
        branches: &[
            Branch {
                name: "Keyboards and Mice",
                leaves: &[
                    leaf!("Mechanical Keyboards", "KBD", ["Keychron", "Logitech", "SteelSeries"], ["TKL Keyboard", "Full-Size Keyboard", "75% Keyboard"], 59..249, stock 15..200),
                    leaf!("Gaming Mice", "MSE", ["Logitech", "Razer", "Zowie"], ["Wireless Mouse", "Ultralight Mouse", "Ergo Mouse"], 29..169, stock 20..250),
                ],
            },
            Branch {
                name: "Monitors",
                leaves: &[
                    leaf!("Gaming Monitors", "MON", ["LG", "Samsung", "ASUS", "Dell"], ["27\" 165Hz QHD", "32\" 144Hz 4K", "34\" Ultrawide OLED"], 199..1299, stock 5..80),
                ],
            },
            Branch {
                name: "Audio",
                leaves: &[
                    leaf!("Headsets", "HST", ["HyperX", "SteelSeries", "Sennheiser"], ["Wireless Headset", "Studio Headset", "Gaming Headset"], 49..349, stock 15..200),
                ],
            },
        ],
    },
    Root {
        name: "Smart Home",
        branches: &[
            Branch {
                name: "Lighting",
                leaves: &[
                    leaf!("Smart Bulbs", "BLB", ["Philips Hue", "Nanoleaf", "LIFX"], ["Color Bulb 2-Pack", "White Ambiance Bulb", "Filament Bulb"], 15..99, stock 30..300),
                    leaf!("Light Strips", "STR", ["Philips Hue", "Govee", "Nanoleaf"], ["Lightstrip 2m", "Gradient Strip", "TV Backlight"], 29..199, stock 20..200),
                ],
            },
            Branch {
                name: "Security",
                leaves: &[
                    leaf!("Cameras", "CAM", ["Arlo", "Ring", "Eufy"], ["Outdoor Camera", "Video Doorbell", "Indoor Cam"], 39..399, stock 10..150),
                    leaf!("Smart Locks", "LCK", ["Nuki", "August", "Yale"], ["Smart Lock Pro", "Keypad Lock", "Bridge Kit"], 99..349, stock 5..100),
                ],
            },
            Branch {
                name: "Climate",
                leaves: &[
                    leaf!("Thermostats", "THM", ["Nest", "Ecobee", "tado"], ["Learning Thermostat", "Smart Thermostat", "Radiator Valve"], 59..279, stock 10..120),
                ],
            },
        ],
    },
    Root {
        name: "Networking",
        branches: &[Branch {
            name: "Wi-Fi",
            leaves: &[
                leaf!("Routers", "RTR", ["ASUS", "TP-Link", "Netgear"], ["Wi-Fi 7 Router", "Wi-Fi 6E Router", "Gaming Router"], 79..699, stock 10..120),
                leaf!("Mesh Systems", "MSH", ["Eero", "Deco", "Orbi"], ["Mesh 3-Pack", "Mesh 2-Pack", "Outdoor Satellite"], 129..899, stock 5..80),
            ],
        }],
    },
];

/// Consultations live under this root.
pub(crate) static SERVICE_TREE: Root = Root {
    name: "Services",
    branches: &[Branch {
        name: "Consultations",
        leaves: &[
            leaf!("PC Build Consultations", "BLD", ["AetherMart"], ["Custom PC build planning", "Upgrade path review", "Overclocking session"], 1..1, stock 0..0),
            leaf!("Smart Home Setup", "SMH", ["AetherMart"], ["Smart home design", "Security system setup", "Lighting scene design"], 1..1, stock 0..0),
            leaf!("Network Audits", "NET", ["AetherMart"], ["Home network audit", "Wi-Fi coverage survey", "Gaming latency tuning"], 1..1, stock 0..0),
        ],
    }],
};

/// Lower-case, dash-separated slug of a name.
pub(crate) fn slug(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
    }
    while out.ends_with('-') {
        out.pop();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_are_lower_case_words_joined_by_dashes() {
        assert_eq!(slug("Memory and Storage"), "memory-and-storage");
        assert_eq!(slug("Wi-Fi"), "wi-fi");
        assert_eq!(slug("27\" 165Hz QHD!"), "27-165hz-qhd");
    }
}
