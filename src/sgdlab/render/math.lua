-- Pandoc filter of the sgdlab built-in engine, applied to every output format.

-- Does the TeX text consist of one brace group, `{...}`? TeX never breaks a line inside one.
local function one_group(text)
  if text:sub(1, 1) ~= "{" or text:sub(-1) ~= "}" then return false end
  local depth, i = 0, 1
  while i <= #text do
    local c = text:sub(i, i)
    if c == "\\" then
      i = i + 1  -- an escaped character (\{, \}) does not open or close a group
    elseif c == "{" then
      depth = depth + 1
    elseif c == "}" then
      depth = depth - 1
      if depth == 0 and i < #text then return false end
    end
    i = i + 1
  end
  return depth == 0
end

function Math(m)
  -- texmath reads the norm bars `\|` as the relation "parallel" (U+2225): in Typst a
  -- superscript then floats above it (`\|x\|^2`). `\Vert` is the delimiter TeX means.
  m.text = m.text:gsub("(\\+)|", function(slashes)
    -- an even run of backslashes is a TeX line break `\\` followed by `|`: leave it
    if #slashes % 2 == 0 then return nil end
    return slashes:sub(2) .. "\\Vert "
  end)
  -- Typst breaks inline math after × and other operators, and drops TeX's braces: a formula that
  -- is one group (a number of sgdlab.fmt, `{1.8 \times 10^{-7}}`) becomes one box, as in TeX.
  if FORMAT == "typst" and m.mathtype == "InlineMath" and one_group(m.text) then
    local typ = pandoc.write(pandoc.Pandoc({pandoc.Plain({m})}), "typst"):gsub("%s+$", "")
    return pandoc.RawInline("typst", "#box(" .. typ .. ");")
  end
  return m
end

-- Typst may break a line between inline math and the full-width punctuation after it, so a line
-- starts with "：" or "）", which Chinese typesetting forbids: a word joiner (U+2060) glues the
-- punctuation to the formula. (Inlines runs after Math, which made some formulas a RawInline box.)
local WORD_JOINER = "\u{2060}"
local CLOSING = {"，", "。", "、", "；", "：", "）", "！", "？", "」", "』", "】", "》"}

local function starts_closing(text)
  for _, p in ipairs(CLOSING) do
    if text:sub(1, #p) == p then return true end
  end
  return false
end

local function is_formula(el)
  return el.t == "Math" and el.mathtype == "InlineMath"
    or el.t == "RawInline" and el.format == "typst" and el.text:sub(1, 5) == "#box("
end

function Inlines(inlines)
  if FORMAT ~= "typst" then return nil end
  for i = 2, #inlines do
    local el = inlines[i]
    if el.t == "Str" and is_formula(inlines[i - 1]) and starts_closing(el.text) then
      el.text = WORD_JOINER .. el.text
    end
  end
  return inlines
end
