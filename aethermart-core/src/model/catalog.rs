//! The catalogue: a category tree, physical products and consultation services.

use super::validation::{self, ValidationError};
use super::{CategoryId, ProductId, ServiceId};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// A row of `Categories`; `parent_id` links it into a tree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Category {
    /// Primary key.
    pub id: CategoryId,
    /// The parent category; `None` for a root.
    pub parent_id: Option<CategoryId>,
    /// Display name, e.g. "Graphics Cards".
    pub name: String,
    /// Unique URL-safe name, e.g. `graphics-cards`.
    pub slug: String,
}

impl Category {
    /// Checks the name and slug.
    pub fn validate(&self) -> Result<(), ValidationError> {
        validation::text("category.name", &self.name, 100)?;
        validation::text("category.slug", &self.slug, 120)?;
        if !self
            .slug
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return Err(ValidationError::UnknownVariant {
                field: "category.slug",
                expected: "lower-case letters, digits and '-'",
            });
        }
        Ok(())
    }
}

/// A validated category forest: every parent exists and there are no cycles.
#[derive(Debug, Clone, Default)]
pub struct CategoryTree {
    by_id: HashMap<CategoryId, Category>,
}

impl CategoryTree {
    /// Builds the tree, rejecting dangling parents, duplicate ids and cycles.
    pub fn new(categories: impl IntoIterator<Item = Category>) -> Result<Self, ValidationError> {
        let mut by_id = HashMap::new();
        for c in categories {
            let id = c.id;
            if by_id.insert(id, c).is_some() {
                return Err(ValidationError::BadCategoryTree {
                    category: id.get(),
                    reason: "duplicate id",
                });
            }
        }
        let tree = Self { by_id };
        for c in tree.by_id.values() {
            if let Some(parent) = c.parent_id
                && !tree.by_id.contains_key(&parent)
            {
                return Err(ValidationError::BadCategoryTree {
                    category: c.id.get(),
                    reason: "parent does not exist",
                });
            }
            // A walk up the tree longer than the number of nodes must have looped.
            let mut steps = 0;
            let mut cursor = c.parent_id;
            while let Some(p) = cursor {
                steps += 1;
                if steps > tree.by_id.len() {
                    return Err(ValidationError::BadCategoryTree {
                        category: c.id.get(),
                        reason: "parent chain forms a cycle",
                    });
                }
                cursor = tree.by_id.get(&p).and_then(|c| c.parent_id);
            }
        }
        Ok(tree)
    }

    /// The category with this id.
    pub fn get(&self, id: CategoryId) -> Option<&Category> {
        self.by_id.get(&id)
    }

    /// Number of categories.
    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    /// True when there are no categories.
    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    /// Names from the root down to `id` (inclusive); empty for an unknown id.
    pub fn path(&self, id: CategoryId) -> Vec<&str> {
        let mut path = Vec::new();
        let mut cursor = self.by_id.get(&id);
        while let Some(c) = cursor {
            path.push(c.name.as_str());
            cursor = c.parent_id.and_then(|p| self.by_id.get(&p));
        }
        path.reverse();
        path
    }

    /// Depth of `id`: 1 for a root, 0 for an unknown id.
    pub fn depth(&self, id: CategoryId) -> usize {
        self.path(id).len()
    }
}

/// A physical product in `Products`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Product {
    /// Primary key.
    pub id: ProductId,
    /// Unique stock-keeping unit.
    pub sku: String,
    /// Display name.
    pub name: String,
    /// Long description: one of the fields embedded for semantic search.
    pub description: String,
    /// Leaf category.
    pub category_id: CategoryId,
    /// Current list price.
    pub price: Decimal,
    /// Units in stock.
    pub stock: u32,
    /// Inactive products cannot be ordered.
    pub is_active: bool,
}

impl Product {
    /// Checks texts and that the price is not negative.
    pub fn validate(&self) -> Result<(), ValidationError> {
        validation::text("product.sku", &self.sku, 64)?;
        validation::text("product.name", &self.name, 200)?;
        validation::non_negative("product.price", self.price)
    }
}

/// A consultation in `Services`: sold beside products, booked for a time slot with a consultant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Service {
    /// Primary key.
    pub id: ServiceId,
    /// Unique service code, e.g. `SRV-PCBUILD-60`.
    pub code: String,
    /// Display name.
    pub name: String,
    /// Long description: one of the fields embedded for semantic search.
    pub description: String,
    /// Category the service belongs to.
    pub category_id: CategoryId,
    /// Length of one session in minutes.
    pub duration_minutes: u32,
    /// Price of one session.
    pub price: Decimal,
    /// Name of the consultant who delivers it.
    pub consultant: String,
    /// Inactive services cannot be booked.
    pub is_active: bool,
}

impl Service {
    /// Checks texts, a positive duration and a non-negative price.
    pub fn validate(&self) -> Result<(), ValidationError> {
        validation::text("service.code", &self.code, 64)?;
        validation::text("service.name", &self.name, 200)?;
        validation::text("service.consultant", &self.consultant, 100)?;
        validation::positive("service.duration_minutes", self.duration_minutes)?;
        validation::non_negative("service.price", self.price)
    }
}
