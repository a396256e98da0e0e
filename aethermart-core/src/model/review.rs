//! Product reviews: MongoDB-native documents with a media array.

use super::validation::{self, ValidationError};
use super::{CustomerId, ProductId, ReviewId};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// A star rating between 1 and 5 inclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "u8", into = "u8")]
pub struct Rating(u8);

impl Rating {
    /// Validates a rating.
    pub fn new(stars: u8) -> Result<Self, ValidationError> {
        if (1..=5).contains(&stars) {
            Ok(Self(stars))
        } else {
            Err(ValidationError::RatingOutOfRange)
        }
    }

    /// Number of stars.
    pub const fn stars(self) -> u8 {
        self.0
    }
}

impl TryFrom<u8> for Rating {
    type Error = ValidationError;
    fn try_from(stars: u8) -> Result<Self, Self::Error> {
        Self::new(stars)
    }
}

impl From<Rating> for u8 {
    fn from(r: Rating) -> Self {
        r.0
    }
}

/// The kind of a media attachment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MediaKind {
    /// A photo.
    Image,
    /// A video clip.
    Video,
}

/// One picture or video attached to a review.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Media {
    /// Image or video.
    #[serde(rename = "type")]
    pub kind: MediaKind,
    /// Where the file lives (`https://…`).
    pub url: String,
    /// Optional caption.
    pub caption: Option<String>,
}

impl Media {
    /// Checks that the URL is an http(s) URL.
    pub fn validate(&self) -> Result<(), ValidationError> {
        validation::text("review.media.url", &self.url, 2048)?;
        if !(self.url.starts_with("https://") || self.url.starts_with("http://")) {
            return Err(ValidationError::UnknownVariant {
                field: "review.media.url",
                expected: "an http:// or https:// URL",
            });
        }
        Ok(())
    }
}

/// A customer's review of a product they bought.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Review {
    /// Document key.
    pub id: ReviewId,
    /// The reviewed product.
    pub product_id: ProductId,
    /// The author.
    pub customer_id: CustomerId,
    /// 1–5 stars.
    pub rating: Rating,
    /// Short headline.
    pub title: String,
    /// Review text.
    pub text: String,
    /// Zero or more pictures and videos.
    pub media: Vec<Media>,
    /// When the review was written.
    pub created_at: DateTime<Utc>,
}

impl Review {
    /// Checks the title, text length and every media item.
    pub fn validate(&self) -> Result<(), ValidationError> {
        validation::text("review.title", &self.title, 200)?;
        if self.text.chars().count() > 10_000 {
            return Err(ValidationError::TooLong {
                field: "review.text",
                len: self.text.chars().count(),
                max: 10_000,
            });
        }
        self.media.iter().try_for_each(Media::validate)
    }
}
