-- Chinese typography around cross-references, in a book whose `lang:` is Chinese (a no-op in any
-- other). Pandoc reads `@fig-x` as a reference only after a character that is not a letter, and a
-- Han character is a letter: the source must write `见 @fig-x`, and the page would read "见 图 2.1".
-- Chinese typesetting sets no space between two Han characters (W3C, Requirements for Chinese Text
-- Layout, 3.2), and the reference begins with one (图, 表, 式, 定理): the space or line break before
-- a cross-reference is dropped after a Han character or full-width punctuation. The one after it stays: "图 2.1 中" is D2L's space between
-- Chinese and a number. Both engines run this file (the built-in engine runs every filter of
-- `filters:` in _quarto.yml but editions.lua, which it implements itself: sgdlab/render/editions.py).

local CROSSREF = {fig = true, tbl = true, eq = true, thm = true, lem = true, cor = true, def = true,
                  sec = true, prp = true, cnj = true, exm = true, exr = true, rem = true}

-- The last UTF-8 character of s, as a code point (nil for an empty string).
local function last_codepoint(s)
  local cp
  for _, c in utf8.codes(s) do cp = c end
  return cp
end

local function is_cjk(cp)
  return cp ~= nil and (
    (cp >= 0x4E00 and cp <= 0x9FFF)      -- CJK Unified Ideographs
    or (cp >= 0x3400 and cp <= 0x4DBF)   -- Extension A
    or (cp >= 0x3000 and cp <= 0x303F)   -- CJK punctuation: 、。「」
    or (cp >= 0xFF00 and cp <= 0xFFEF))  -- full-width forms: ，：；（）
end

local function crossref_id(id)
  local prefix = id:match("^#?(%a+)%-")
  return prefix ~= nil and CROSSREF[prefix] == true
end

-- A cross-reference as Pandoc parsed it (a Cite whose every key has a Quarto prefix), or as a
-- link to one once resolved (the built-in engine resolves references before Pandoc reads them).
local function is_crossref(el)
  if el.t == "Cite" then
    for _, c in ipairs(el.citations) do
      if not crossref_id(c.id) then return false end
    end
    return #el.citations > 0
  end
  return el.t == "Link" and el.target:sub(1, 1) == "#" and crossref_id(el.target)
end

local chinese = false

function Meta(meta)
  local lang = meta.lang and pandoc.utils.stringify(meta.lang) or ""
  chinese = lang:match("^zh") ~= nil
end

function Inlines(inlines)
  if not chinese then return nil end
  local out = pandoc.Inlines({})
  for i, el in ipairs(inlines) do
    local prev, next = out[#out], inlines[i + 1]
    local space = el.t == "Space" or el.t == "SoftBreak"
    if not (space and prev and prev.t == "Str" and is_cjk(last_codepoint(prev.text))
            and next and is_crossref(next)) then
      out:insert(el)
    end
  end
  return out
end

-- Meta first: the language decides what Inlines does.
return {{Meta = Meta}, {Inlines = Inlines}}
